#include "ccurl_shim.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

CURLcode miniapp_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode miniapp_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode miniapp_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode miniapp_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode miniapp_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode miniapp_curl_setopt_write_fn(CURL *handle, CURLoption option, miniapp_curl_write_fn fn) {
    return curl_easy_setopt(handle, option, fn);
}

CURLcode miniapp_curl_getinfo_long(CURL *handle, CURLINFO info, long *out) {
    return curl_easy_getinfo(handle, info, out);
}

static curl_socket_t miniapp_pin_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
    miniapp_curl_pin *pin = clientp;
    char seen[64] = {0};
    const void *src = NULL;
    if (a->family == AF_INET) {
        src = &((const struct sockaddr_in *)&a->addr)->sin_addr;
    } else if (a->family == AF_INET6) {
        src = &((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
    }
    if (purpose != CURLSOCKTYPE_IPCXN || src == NULL || inet_ntop(a->family, src, seen, sizeof seen) == NULL ||
        strcmp(seen, pin->address) != 0) {
        pin->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

CURLcode miniapp_curl_pin_address(CURL *handle, miniapp_curl_pin *pin) {
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, miniapp_pin_open);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_OPENSOCKETDATA, pin);
}
