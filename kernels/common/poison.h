/* Memory a caller left unset on purpose (the rows of a likelihood table or of its spline
 * coefficients that no value uses: keep_rows, rctd_spline_coef_build_rows) is poisoned under
 * AddressSanitizer, so that a read of it fails loudly in the sanitizer build instead of reading
 * garbage; elsewhere these do nothing.  Unpoison before writing or reading (ASan's allocator
 * frees and reallocates memory the program poisoned itself). */
#ifndef RCTD_POISON_H
#define RCTD_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define RCTD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RCTD_ASAN 1
#endif
#endif

#ifdef RCTD_ASAN
#define RCTD_ASAN_ON 1
#include <sanitizer/asan_interface.h>
#define RCTD_POISON(p, bytes) ASAN_POISON_MEMORY_REGION((p), (bytes))
#define RCTD_UNPOISON(p, bytes) ASAN_UNPOISON_MEMORY_REGION((p), (bytes))
#define RCTD_IS_POISONED(p) __asan_address_is_poisoned(p)
#else
#define RCTD_ASAN_ON 0
#define RCTD_POISON(p, bytes) ((void)(p), (void)(bytes))
#define RCTD_UNPOISON(p, bytes) ((void)(p), (void)(bytes))
#define RCTD_IS_POISONED(p) ((void)(p), 0)
#endif

#endif
