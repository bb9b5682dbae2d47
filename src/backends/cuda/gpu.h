/* Portability: the GPU backend is written once in CUDA C and compiled by nvcc (NVIDIA) or hipcc (AMD,
 * -DHB_HIP). Every runtime/BLAS call goes through these names; nothing CUDA-only is used without a ROCm
 * counterpart mapped here. */
#ifndef HB_GPU_H
#define HB_GPU_H

#if defined(HB_HIP)
#include <hip/hip_runtime.h>
#include <hip/hip_bf16.h>
#include <hipblaslt/hipblaslt.h>
typedef hipStream_t gpuStream_t;
typedef hipError_t gpuError_t;
typedef hipEvent_t gpuEvent_t;
typedef __hip_bfloat16 gpu_bf16;
#define gpuSuccess hipSuccess
#define gpuGetErrorString hipGetErrorString
#define gpuGetLastError hipGetLastError
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuSetDevice hipSetDevice
#define gpuGetDeviceProperties hipGetDeviceProperties
typedef hipDeviceProp_t gpuDeviceProp;
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuMemcpy hipMemcpy
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuStreamCreate hipStreamCreate
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuEventCreate hipEventCreate
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventElapsedTime hipEventElapsedTime
#define gpuFuncSetAttribute(f, a, v) hipFuncSetAttribute((const void *)(f), a, v)
#define gpuFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define gpuMemGetInfo hipMemGetInfo
#define gpuGetDevice hipGetDevice
#define gpuDeviceSynchronize hipDeviceSynchronize
#define GPU_WARP 64   /* wavefront on CDNA; kernels use GPU_WARP, never a literal 32 */
#define GPU_API_NAME "HIP"
/* Butterfly exchange inside a warp (all lanes take part). */
#define gpuShflXor(v, m) __shfl_xor(v, m)
/* Whether p is device memory of this runtime (host pointers, registered or not, give false). */
static inline bool gpuIsDevicePointer(const void *p) {
    hipPointerAttribute_t a;
    if (hipPointerGetAttributes(&a, p) != hipSuccess) { (void)hipGetLastError(); return false; }
#if HIP_VERSION_MAJOR >= 6
    return a.type == hipMemoryTypeDevice || a.type == hipMemoryTypeManaged;
#else
    return a.memoryType == hipMemoryTypeDevice || a.memoryType == hipMemoryTypeUnified;
#endif
}
#else
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
typedef cudaStream_t gpuStream_t;
typedef cudaError_t gpuError_t;
typedef cudaEvent_t gpuEvent_t;
typedef __nv_bfloat16 gpu_bf16;
#define gpuSuccess cudaSuccess
#define gpuGetErrorString cudaGetErrorString
#define gpuGetLastError cudaGetLastError
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuSetDevice cudaSetDevice
#define gpuGetDeviceProperties cudaGetDeviceProperties
typedef cudaDeviceProp gpuDeviceProp;
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuMemcpy cudaMemcpy
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuStreamCreate cudaStreamCreate
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuEventCreate cudaEventCreate
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventElapsedTime cudaEventElapsedTime
#define gpuFuncSetAttribute(f, a, v) cudaFuncSetAttribute(f, a, v)
#define gpuFuncAttributeMaxDynamicSharedMemorySize cudaFuncAttributeMaxDynamicSharedMemorySize
#define gpuMemGetInfo cudaMemGetInfo
#define gpuGetDevice cudaGetDevice
#define gpuDeviceSynchronize cudaDeviceSynchronize
#define GPU_WARP 32
#define GPU_API_NAME "CUDA"
/* Butterfly exchange inside a warp (all lanes take part). */
#define gpuShflXor(v, m) __shfl_xor_sync(0xffffffffu, v, m)
/* Whether p is device memory of this runtime (host pointers, registered or not, give false). */
static inline bool gpuIsDevicePointer(const void *p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) { (void)cudaGetLastError(); return false; }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}
#endif

#endif
