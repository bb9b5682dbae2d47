// The official OpenAI Node SDK (npm package `openai`) against hb serve: create (the SDK sends multipart, with
// input_reference as a file part for I2V), retrieve until completed, list, downloadContent (video and
// thumbnail), remix (501 -> APIError), delete, and a 400 surfacing as BadRequestError with its param.
// usage: node serve_openai_sdk.cjs BASE_URL API_KEY PNG_PATH   (run by tests/test_serve_openai_sdk.py)
const OpenAI = require('openai');
const fs = require('fs');
const [base, key, pngPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0 });
let failures = 0;
const check = (cond, what) => { if (!cond) { failures++; console.error('CHECK failed:', what); } };

async function waitDone(id) {
  for (let i = 0; i < 600; i++) {
    const v = await client.videos.retrieve(id);
    if (v.status === 'completed' || v.status === 'failed') return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timeout');
}

(async () => {
  const v = await client.videos.create({ prompt: 'a paper boat', model: 'xt', seconds: '4', size: '1280x720' });
  check(v.object === 'video' && v.status === 'queued' && v.size === '1280x704' && v.seconds === '4', JSON.stringify(v));
  await client.videos.delete(v.id); // too big for a test: only the mapping is checked

  const t2v = await client.videos.create({ prompt: 'a paper boat', size: '64x64', num_frames: 5, seed: 9 });
  const done = await waitDone(t2v.id);
  check(done.status === 'completed' && done.progress === 100, JSON.stringify(done));
  const mp4 = Buffer.from(await (await client.videos.downloadContent(t2v.id)).arrayBuffer());
  check(mp4.subarray(4, 8).toString() === 'ftyp', 'mp4 download');
  const jpg = Buffer.from(await (await client.videos.downloadContent(t2v.id, { variant: 'thumbnail' })).arrayBuffer());
  check(jpg[0] === 0xff && jpg[1] === 0xd8, 'thumbnail download');

  const i2v = await client.videos.create({
    prompt: 'a boat', size: '64x64', num_frames: 5,
    input_reference: await OpenAI.toFile(fs.readFileSync(pngPath), 'in.png', { type: 'image/png' }),
  });
  const i2vDone = await waitDone(i2v.id);
  check(i2vDone.status === 'completed', 'i2v: ' + JSON.stringify(i2vDone));

  const ids = [];
  for await (const item of client.videos.list({ limit: 1, order: 'asc' })) ids.push(item.id);
  check(ids.includes(t2v.id) && ids.includes(i2v.id), 'auto-paginated list: ' + ids.length);

  try { await client.videos.create({ prompt: 'x', size: '65x64' }); check(false, '400 expected'); }
  catch (e) { check(e instanceof OpenAI.BadRequestError && e.param === 'size' && /nearest valid size/.test(e.message), String(e)); }
  try { await client.videos.remix(t2v.id, { prompt: 'y' }); check(false, '501 expected'); }
  catch (e) { check(e instanceof OpenAI.APIError && e.status === 501, String(e)); }
  const del = await client.videos.delete(t2v.id);
  check(del.deleted === true && del.object === 'video.deleted', JSON.stringify(del));
  try { await client.videos.retrieve(t2v.id); check(false, '404 expected'); }
  catch (e) { check(e instanceof OpenAI.NotFoundError, String(e)); }
  const bad = new OpenAI({ baseURL: base, apiKey: 'wrong', maxRetries: 0 });
  try { await bad.videos.list(); check(false, '401 expected'); }
  catch (e) { check(e instanceof OpenAI.AuthenticationError, String(e)); }
  console.log(failures ? `${failures} failed` : 'openai sdk: all checks passed');
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.error('error:', e); process.exit(1); });
