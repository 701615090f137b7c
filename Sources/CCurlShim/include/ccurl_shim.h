// Typed, non-variadic wrappers around libcurl's variadic entry points.
// Swift cannot call C variadic functions, and calling curl_easy_setopt through a
// non-variadic function pointer is undefined behaviour, so each argument type gets one
// tiny wrapper here. Nothing else belongs in this target.
#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H

#include <curl/curl.h>

/// Write/header callback signature (libcurl's curl_write_callback).
typedef size_t (*miniapp_curl_write_fn)(char *data, size_t size, size_t nmemb, void *userdata);

CURLcode miniapp_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode miniapp_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode miniapp_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode miniapp_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode miniapp_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode miniapp_curl_setopt_write_fn(CURL *handle, CURLoption option, miniapp_curl_write_fn fn);
CURLcode miniapp_curl_getinfo_long(CURL *handle, CURLINFO info, long *out);

#endif
