// The k best logits of a row on the device, so that a decode step brings back k (logit, id) pairs
// instead of the whole vocabulary. Each logit becomes one 64-bit key that orders as the sampler
// does (larger logit first, then lower id): the logit's bits made monotonic in the high word,
// ~id in the low word, -0 folded into +0 (they compare equal on the host). Pass 1: kTopKBlocks
// blocks each keep the top k of their slice; pass 2: one block keeps the top k of those. A block
// keeps its top k by sorting 2048 keys at a time (bitonic, shared memory): its current best k
// plus the next 2048 - k unseen keys. k == 1 is a plain max reduction.
#include "cuda/common.cuh"

namespace ilm::cuda {
namespace {

constexpr int kSortKeys = 2048;
constexpr int kTopKThreads = 512;
static_assert(kMaxTopK < kSortKeys, "a sort must take new keys besides the kept ones");

__device__ __forceinline__ unsigned long long make_key(float v, int32_t id) {
  v = v + 0.0f;  // -0 + 0 = +0: equal logits give equal keys but for the id
  uint32_t b = __float_as_uint(v);
  b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (static_cast<unsigned long long>(b) << 32) | uint32_t(0xffffffffu - uint32_t(id));
}

__device__ __forceinline__ void split_key(unsigned long long key, float* value, int32_t* id) {
  const uint32_t hi = uint32_t(key >> 32);
  *value = __uint_as_float((hi & 0x80000000u) ? (hi & 0x7fffffffu) : ~hi);
  *id = int32_t(0xffffffffu - uint32_t(key));
}

// Sorts keys[0, kSortKeys) in descending order (all threads of the block).
__device__ void bitonic_sort_desc(unsigned long long* keys) {
  for (int k = 2; k <= kSortKeys; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < kSortKeys; i += blockDim.x) {
        const int ixj = i ^ j;
        if (ixj > i) {
          const unsigned long long a = keys[i], b = keys[ixj];
          // Blocks with (i & k) == 0 end descending, the others ascending; the last merge
          // (k == kSortKeys) makes the whole array descending. Equal keys never occur but for
          // the zero padding, where a swap changes nothing.
          if ((a < b) == ((i & k) == 0)) {
            keys[i] = b;
            keys[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

__device__ __forceinline__ unsigned long long warp_max_u64(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

// The top k keys of items [begin, end) (key_at(i) gives item i's key) into out[0, k), best first;
// slots past the number of items get key 0, below every real key.
template <typename KeyAt>
__device__ void block_top_k(int begin, int end, int k, const KeyAt& key_at, unsigned long long* out) {
  __shared__ unsigned long long keys[kSortKeys];
  __shared__ unsigned long long warp_best[kTopKThreads / 32];
  if (k == 1) {
    unsigned long long best = 0;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const unsigned long long key = key_at(i);
      best = key > best ? key : best;
    }
    best = warp_max_u64(best);
    if ((threadIdx.x & 31) == 0) warp_best[threadIdx.x >> 5] = best;
    __syncthreads();
    if (threadIdx.x < 32) {
      best = threadIdx.x < (blockDim.x >> 5) ? warp_best[threadIdx.x] : 0;
      best = warp_max_u64(best);
      if (threadIdx.x == 0) out[0] = best;
    }
    return;
  }
  int kept = 0;  // keys[0, kept) hold the best so far, in order
  int next = begin;
  do {
    const int fresh = min(kSortKeys - kept, end - next);
    for (int i = threadIdx.x; i < kSortKeys - kept; i += blockDim.x) keys[kept + i] = i < fresh ? key_at(next + i) : 0ull;
    __syncthreads();
    bitonic_sort_desc(keys);
    next += fresh;
    kept = min(k, kept + fresh);
  } while (next < end);
  for (int i = threadIdx.x; i < k; i += blockDim.x) out[i] = i < kept ? keys[i] : 0ull;
}

// Pass 1: block b takes logits [b * slice, (b + 1) * slice).
__global__ void __launch_bounds__(kTopKThreads)
    top_k_pass1(const float* logits, int n, const StepParams* params, unsigned long long* scratch) {
  const int k = min(max(params->top_k, 1), kMaxTopK);
  const int slice = ceil_div(n, gridDim.x);
  const int begin = min(n, int(blockIdx.x) * slice), end = min(n, begin + slice);
  block_top_k(begin, end, k, [&](int i) { return make_key(logits[i], i); }, scratch + size_t(blockIdx.x) * kMaxTopK);
}

// Pass 2: one block over the gridDim.x (pass 1's) lists of k keys.
__global__ void __launch_bounds__(kTopKThreads)
    top_k_pass2(const unsigned long long* scratch, int lists, const StepParams* params, float* out_values, int32_t* out_ids) {
  __shared__ unsigned long long best[kMaxTopK];
  const int k = min(max(params->top_k, 1), kMaxTopK);
  block_top_k(0, lists * k, k, [&](int i) { return scratch[size_t(i / k) * kMaxTopK + i % k]; }, best);
  __syncthreads();
  for (int i = threadIdx.x; i < k; i += blockDim.x) split_key(best[i], out_values + i, out_ids + i);
}

}  // namespace

void top_k(const float* logits, int n, const StepParams* params, unsigned long long* scratch, float* out_values,
           int32_t* out_ids, cudaStream_t stream) {
  top_k_pass1<<<kTopKBlocks, kTopKThreads, 0, stream>>>(logits, n, params, scratch);
  check_kernel("top_k (pass 1)");
  top_k_pass2<<<1, kTopKThreads, 0, stream>>>(scratch, kTopKBlocks, params, out_values, out_ids);
  check_kernel("top_k (pass 2)");
}

}  // namespace ilm::cuda
