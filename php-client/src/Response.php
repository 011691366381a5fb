<?php

declare(strict_types=1);

namespace Zeno;

/**
 * A response a handler may return when a string or an array is not enough: a status,
 * headers and a body. Headers set here win over those set with `header()`.
 */
final class Response
{
    /** @var array<string, list<string>> */
    private array $headers = [];

    /** @param array<string, string|list<string>> $headers */
    public function __construct(private string $body = '', private int $status = 200, array $headers = [])
    {
        foreach ($headers as $name => $value) {
            $this->withHeader((string) $name, $value);
        }
    }

    /** A JSON response. */
    public static function json(mixed $data, int $status = 200): self
    {
        $body = json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        return new self($body, $status, ['content-type' => 'application/json']);
    }

    /** A redirect to `$location`. */
    public static function redirect(string $location, int $status = 302): self
    {
        return new self('', $status, ['location' => $location]);
    }

    /** Sets a header, replacing any earlier value of the same name. */
    public function withHeader(string $name, string|array $value): self
    {
        $this->headers[strtolower($name)] = array_values(array_map('strval', (array) $value));
        return $this;
    }

    /** Adds a value to a header (for `set-cookie` and other repeatable headers). */
    public function addHeader(string $name, string $value): self
    {
        $this->headers[strtolower($name)][] = $value;
        return $this;
    }

    public function withStatus(int $status): self
    {
        $this->status = $status;
        return $this;
    }

    public function status(): int
    {
        return $this->status;
    }

    /** @return array<string, list<string>> */
    public function headers(): array
    {
        return $this->headers;
    }

    public function body(): string
    {
        return $this->body;
    }
}
