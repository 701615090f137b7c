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

/// The one address a transfer may connect to, in inet_ntop form ("127.0.0.1", "2001:db8::1").
/// `refused` is set when libcurl tried any other address (or a non-connection socket).
typedef struct miniapp_curl_pin {
    char address[64];
    int refused;
} miniapp_curl_pin;

/// Installs an open-socket callback that refuses every connection except to `pin->address`,
/// and opens sockets close-on-exec (the daemon forks workers). `pin` must outlive the transfer.
/// This checks the address at connect(2) time, after every name resolution libcurl did, so
/// neither DNS rebinding nor a resolver surprise can send the request elsewhere.
CURLcode miniapp_curl_pin_address(CURL *handle, miniapp_curl_pin *pin);

#endif
