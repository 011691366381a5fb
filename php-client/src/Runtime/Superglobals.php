<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * Builds `$_SERVER`, `$_GET`, `$_POST`, `$_COOKIE`, `$_FILES` and `$_REQUEST` from a protocol
 * `http` request the way PHP-FPM fills them, so code written for FPM runs unchanged.
 */
final class Superglobals
{
    /**
     * @param array<string, mixed> $http   the request's `http` object
     * @param array<string, mixed> $base   `$_SERVER` entries that hold for every request
     * @return array{server: array<string, mixed>, get: array<mixed>, post: array<mixed>,
     *               cookie: array<mixed>, files: array<mixed>, request: array<mixed>}
     */
    public static function build(array $http, array $base, string $body): array
    {
        $headers = $http['headers'] ?? [];
        $method = strtoupper((string) ($http['method'] ?? 'GET'));
        $query = (string) ($http['query'] ?? '');
        $contentType = self::header($headers, 'content-type');

        $server = $base;
        $now = microtime(true);
        [$remoteAddr, $remotePort] = self::splitAddr((string) ($http['remote_addr'] ?? ''));
        [$serverAddr, $serverPort] = self::splitAddr((string) ($http['server_addr'] ?? ''));
        $host = self::header($headers, 'host') ?? $serverAddr;
        $https = ($http['scheme'] ?? 'http') === 'https';

        $prefix = (string) ($http['script_prefix'] ?? '');
        if ($prefix !== '') {
            // Mounted under a sub-path, as PHP-FPM presents an app there.
            $server['SCRIPT_NAME'] = $prefix . ($base['SCRIPT_NAME'] ?? '');
            $server['PHP_SELF'] = $prefix . ($base['PHP_SELF'] ?? '');
            $rest = substr((string) ($http['path'] ?? ''), strlen($prefix));
            $server['PATH_INFO'] = $rest === '' ? '/' : $rest;
        }
        $server['REQUEST_METHOD'] = $method;
        $server['REQUEST_URI'] = (string) ($http['uri'] ?? '/');
        $server['QUERY_STRING'] = $query;
        $server['SERVER_PROTOCOL'] = (string) ($http['protocol'] ?? 'HTTP/1.1');
        $server['REQUEST_SCHEME'] = $https ? 'https' : 'http';
        $server['REMOTE_ADDR'] = $remoteAddr;
        $server['REMOTE_PORT'] = $remotePort;
        $server['SERVER_ADDR'] = $serverAddr;
        $server['SERVER_PORT'] = $serverPort !== '' ? $serverPort : ($https ? '443' : '80');
        $server['SERVER_NAME'] = self::hostName((string) $host);
        $server['GATEWAY_INTERFACE'] = 'CGI/1.1';
        $server['SERVER_SOFTWARE'] = 'zeno';
        $server['REQUEST_TIME'] = (int) $now;
        $server['REQUEST_TIME_FLOAT'] = $now;
        if ($https) {
            $server['HTTPS'] = 'on';
        } else {
            unset($server['HTTPS']);
        }
        if ($contentType !== null) {
            $server['CONTENT_TYPE'] = $contentType;
        }
        $length = self::header($headers, 'content-length');
        if ($length !== null) {
            $server['CONTENT_LENGTH'] = $length;
        } elseif ($body !== '') {
            $server['CONTENT_LENGTH'] = (string) strlen($body);
        }
        foreach ($headers as $name => $values) {
            $key = 'HTTP_' . strtoupper(str_replace('-', '_', (string) $name));
            if ($key === 'HTTP_CONTENT_TYPE' || $key === 'HTTP_CONTENT_LENGTH') {
                continue;
            }
            $server[$key] = implode($name === 'cookie' ? '; ' : ', ', (array) $values);
        }

        $get = [];
        if ($query !== '') {
            parse_str($query, $get);
        }

        $post = [];
        $files = [];
        if ($method === 'POST') {
            $mime = strtolower(trim(explode(';', (string) $contentType)[0]));
            if ($mime === 'application/x-www-form-urlencoded') {
                parse_str($body, $post);
            } elseif ($mime === 'multipart/form-data') {
                $post = self::fields($http['fields'] ?? []);
                $files = self::files($http['uploads'] ?? []);
            }
        }

        $cookie = self::cookies(self::header($headers, 'cookie', '; ') ?? '');

        return [
            'server' => $server,
            'get' => $get,
            'post' => $post,
            'cookie' => $cookie,
            'files' => $files,
            'request' => array_merge($get, $post),
        ];
    }

    /** @param array<string, mixed> $headers */
    public static function header(array $headers, string $name, string $glue = ', '): ?string
    {
        if (!isset($headers[$name])) {
            return null;
        }
        return implode($glue, (array) $headers[$name]);
    }

    /**
     * Cookies as PHP parses them: `;`-separated pairs, values URL-decoded, names mangled like
     * variable names, the first of two equal names wins.
     *
     * @return array<mixed>
     */
    public static function cookies(string $header): array
    {
        $cookies = [];
        foreach (explode(';', $header) as $pair) {
            $pair = ltrim($pair, " \t");
            if ($pair === '') {
                continue;
            }
            $eq = strpos($pair, '=');
            $name = $eq === false ? $pair : substr($pair, 0, $eq);
            $value = $eq === false ? '' : substr($pair, $eq + 1);
            if ($name === '') {
                continue;
            }
            $parsed = [];
            parse_str(rawurlencode($name) . '=' . rawurlencode(urldecode($value)), $parsed);
            foreach ($parsed as $key => $parsedValue) {
                if (!array_key_exists($key, $cookies)) {
                    $cookies[$key] = $parsedValue;
                }
            }
        }
        return $cookies;
    }

    /**
     * @param list<array{name: string, value: string}> $fields
     * @return array<mixed>
     */
    private static function fields(array $fields): array
    {
        $pairs = [];
        foreach ($fields as $field) {
            $pairs[] = self::encodeName((string) $field['name']) . '=' . rawurlencode((string) $field['value']);
        }
        $post = [];
        parse_str(implode('&', $pairs), $post);
        return $post;
    }

    /** Encodes a field name for parse_str while keeping its brackets meaningful. */
    private static function encodeName(string $name): string
    {
        return str_replace(['%5B', '%5D'], ['[', ']'], rawurlencode($name));
    }

    /**
     * `$_FILES` in PHP's own shape, including the transposed arrays of `name[]` fields.
     *
     * @param list<array<string, mixed>> $uploads
     * @return array<mixed>
     */
    public static function files(array $uploads): array
    {
        $files = [];
        foreach ($uploads as $upload) {
            $field = (string) $upload['field'];
            $bracket = strpos($field, '[');
            $base = $bracket === false ? $field : substr($field, 0, $bracket);
            $base = strtr($base, ' .', '__');
            $path = [];
            if ($bracket !== false && preg_match_all('/\[([^\]]*)\]/', substr($field, $bracket), $m)) {
                $path = $m[1];
            }
            $entry = [
                'name' => basename((string) $upload['name']),
                'full_path' => (string) $upload['name'],
                'type' => (string) $upload['type'],
                'tmp_name' => (string) $upload['tmp_name'],
                'error' => (int) ($upload['error'] ?? 0),
                'size' => (int) $upload['size'],
            ];
            if ($path === []) {
                $files[$base] = $entry;
                continue;
            }
            $files[$base] ??= [];
            // The index of an empty `[]` is taken once, from `name`, so every attribute of
            // one upload lands under the same key.
            $resolved = [];
            $node = $files[$base]['name'] ?? [];
            foreach ($path as $key) {
                if ($key === '') {
                    $key = is_array($node) && $node !== [] ? max(array_filter(array_keys($node), 'is_int') ?: [-1]) + 1 : 0;
                }
                $resolved[] = $key;
                $node = is_array($node) ? ($node[$key] ?? []) : [];
            }
            foreach ($entry as $attr => $value) {
                $target = &$files[$base][$attr];
                foreach ($resolved as $key) {
                    if (!is_array($target)) {
                        $target = [];
                    }
                    $target = &$target[$key];
                }
                $target = $value;
                unset($target);
            }
        }
        return $files;
    }

    /** @return array{0: string, 1: string} */
    private static function splitAddr(string $addr): array
    {
        if ($addr === '') {
            return ['', ''];
        }
        $colon = strrpos($addr, ':');
        if ($colon === false) {
            return [$addr, ''];
        }
        return [trim(substr($addr, 0, $colon), '[]'), substr($addr, $colon + 1)];
    }

    private static function hostName(string $host): string
    {
        if ($host !== '' && $host[0] === '[') {
            $end = strpos($host, ']');
            return $end === false ? $host : substr($host, 1, $end - 1);
        }
        $colon = strrpos($host, ':');
        return $colon === false ? $host : substr($host, 0, $colon);
    }
}
