<?php

declare(strict_types=1);

namespace Zeno;

/**
 * The request a handler receives: the HTTP request (or task) the host dispatched, with
 * helpers for the usual questions. The superglobals hold the same data.
 */
final class Request
{
    /** @var array<string, mixed>|null */
    private ?array $json = null;

    /**
     * @param array<string, mixed> $http  the protocol `http` object (empty for a task)
     * @param array<mixed> $get
     * @param array<mixed> $post
     * @param array<mixed> $cookies
     * @param array<mixed> $files
     * @param array<string, mixed> $scope
     * @param mixed $task  the task payload, for `kind: task`
     */
    public function __construct(
        private string $id,
        private string $kind,
        private array $http,
        private string $body,
        private array $get,
        private array $post,
        private array $cookies,
        private array $files,
        private array $scope,
        private mixed $task = null,
    ) {
    }

    /** The host's id for this request. */
    public function id(): string
    {
        return $this->id;
    }

    /** `http` or `task`. */
    public function kind(): string
    {
        return $this->kind;
    }

    /** The task payload, for requests of kind `task`. */
    public function task(): mixed
    {
        return $this->task;
    }

    public function method(): string
    {
        return strtoupper((string) ($this->http['method'] ?? ''));
    }

    /** The request target, path and query, as the client sent it. */
    public function uri(): string
    {
        return (string) ($this->http['uri'] ?? '');
    }

    /** The URL-decoded path. */
    public function path(): string
    {
        return rawurldecode((string) ($this->http['path'] ?? ''));
    }

    /** A query parameter, or all of them when `$key` is null. */
    public function query(?string $key = null, mixed $default = null): mixed
    {
        return $key === null ? $this->get : ($this->get[$key] ?? $default);
    }

    /** A form field (urlencoded or multipart), or all of them. */
    public function post(?string $key = null, mixed $default = null): mixed
    {
        return $key === null ? $this->post : ($this->post[$key] ?? $default);
    }

    /** A value from the JSON body, the form, or the query, in that order. */
    public function input(string $key, mixed $default = null): mixed
    {
        $json = $this->json();
        if (is_array($json) && array_key_exists($key, $json)) {
            return $json[$key];
        }
        return $this->post[$key] ?? $this->get[$key] ?? $default;
    }

    /** The body decoded as JSON, or null when it is not JSON. */
    public function json(): mixed
    {
        if ($this->json === null) {
            $decoded = $this->body === '' ? null : json_decode($this->body, true);
            $this->json = ['value' => $decoded];
        }
        return $this->json['value'];
    }

    /** The first value of a header (case-insensitive), or `$default`. */
    public function header(string $name, ?string $default = null): ?string
    {
        $values = $this->http['headers'][strtolower($name)] ?? null;
        return $values === null ? $default : (string) ((array) $values)[0];
    }

    /** @return array<string, list<string>> every header, names in lower case */
    public function headers(): array
    {
        return $this->http['headers'] ?? [];
    }

    public function cookie(string $name, ?string $default = null): mixed
    {
        return $this->cookies[$name] ?? $default;
    }

    /** @return array<string, mixed>|null an entry of `$_FILES` */
    public function file(string $field): ?array
    {
        return $this->files[$field] ?? null;
    }

    /** The raw body. */
    public function body(): string
    {
        return $this->body;
    }

    /** A value of the request's scope (`$_ZENO`), or the whole scope. */
    public function scope(?string $key = null, mixed $default = null): mixed
    {
        return $key === null ? $this->scope : ($this->scope[$key] ?? $default);
    }
}
