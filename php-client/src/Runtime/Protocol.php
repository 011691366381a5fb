<?php

declare(strict_types=1);

namespace Zeno\Runtime;

/**
 * Every message the worker sends, built in one place that knows protocol 1
 * (docs/protocol.md): field names, optional fields, and how a body travels.
 */
final class Protocol
{
    /** The protocol version this runtime speaks; the host refuses a worker that differs. */
    public const VERSION = 1;

    /** @return array<string, mixed> `ready`: booted, serving from now on */
    public static function ready(string $app): array
    {
        return [
            'type' => 'ready',
            'protocol' => self::VERSION,
            'pid' => getmypid(),
            'php' => PHP_VERSION,
            'app' => $app,
        ];
    }

    /**
     * A `response`; `terminating` says after-response work follows (then `done`), `exiting`
     * that the worker exits after it.
     *
     * @param array<string, list<string>> $headers names in lower case
     * @return array<string, mixed>
     */
    public static function response(
        string $id,
        int $status,
        array $headers,
        string $body,
        bool $terminating = false,
        bool $exiting = false,
        bool $stream = false,
    ): array {
        $message = ['type' => 'response', 'id' => $id, 'status' => $status, 'headers' => $headers]
            + self::body($body);
        if ($stream) {
            $message['stream'] = true;
        }
        if ($terminating) {
            $message['terminating'] = true;
        }
        if ($exiting) {
            $message['exiting'] = true;
        }
        return $message;
    }

    /** @return array<string, mixed> a plain-text error `response` */
    public static function error(string $id, int $status = 500, bool $exiting = false): array
    {
        return self::response(
            $id,
            $status,
            ['content-type' => ['text/plain; charset=UTF-8']],
            "Internal Server Error\n",
            exiting: $exiting,
        );
    }

    /** @return array<string, mixed> `end`: the streamed body of `$id` is complete */
    public static function end(string $id, bool $exiting = false): array
    {
        $message = ['type' => 'end', 'id' => $id];
        if ($exiting) {
            $message['exiting'] = true;
        }
        return $message;
    }

    /** @return array<string, mixed> `done`: the after-response work of `$id` is over */
    public static function done(string $id, bool $exiting = false): array
    {
        $message = ['type' => 'done', 'id' => $id];
        if ($exiting) {
            $message['exiting'] = true;
        }
        return $message;
    }

    /**
     * @param array<string, mixed> $parameters
     * @return array<string, mixed>
     */
    public static function hostCall(string $id, string $request, string $function, array $parameters): array
    {
        return [
            'type' => 'host_call',
            'id' => $id,
            'request' => $request,
            'function' => $function,
            'parameters' => $parameters === [] ? new \stdClass() : $parameters,
        ];
    }

    /**
     * @param array<string, mixed> $context
     * @return array<string, mixed>
     */
    public static function log(string $level, string $message, array $context, ?string $request): array
    {
        $record = [
            'type' => 'log',
            'level' => $level,
            'message' => $message,
            'context' => $context === [] ? new \stdClass() : $context,
        ];
        if ($request !== null) {
            $record['request'] = $request;
        }
        return $record;
    }

    /** @return array<string, string> `body` for UTF-8, `body_b64` for anything else */
    public static function body(string $bytes): array
    {
        if ($bytes === '') {
            return [];
        }
        return preg_match('//u', $bytes) === 1 ? ['body' => $bytes] : ['body_b64' => base64_encode($bytes)];
    }

    /** The body of a request message, decoded. @param array<string, mixed> $http */
    public static function requestBody(array $http): string
    {
        if (isset($http['body_b64'])) {
            return (string) base64_decode((string) $http['body_b64'], true);
        }
        return (string) ($http['body'] ?? '');
    }
}
