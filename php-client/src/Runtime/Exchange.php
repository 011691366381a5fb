<?php

declare(strict_types=1);

namespace Zeno\Runtime;

use Zeno\Request;
use Zeno\Response;

/**
 * One request's trip through PHP's globals: the protocol request becomes the superglobals,
 * `php://input` and a `Zeno\Request`; what the handler returned, echoed and set with
 * `header()` becomes the protocol response; afterwards everything is put back.
 */
final class Exchange
{
    /** @param array<string, mixed> $baseServer `$_SERVER` entries that hold for every request */
    public function __construct(private array $baseServer)
    {
    }

    /**
     * Installs the request in PHP's globals and returns it as a `Zeno\Request`.
     *
     * @param array<string, mixed> $message a `request` message
     */
    public function enter(array $message): Request
    {
        $http = is_array($message['http'] ?? null) ? $message['http'] : [];
        $scope = is_array($message['_zeno_scope'] ?? null) ? $message['_zeno_scope'] : [];
        $body = Protocol::requestBody($http);
        $globals = Superglobals::build($http, $this->baseServer, $body);
        $_SERVER = $globals['server'];
        $_GET = $globals['get'];
        $_POST = $globals['post'];
        $_COOKIE = $globals['cookie'];
        $_FILES = $globals['files'];
        $_REQUEST = $globals['request'];
        $GLOBALS['_ZENO'] = $scope;
        PhpStream::setInput($body);
        self::resetHeaders();
        return new Request(
            (string) $message['id'],
            (string) ($message['kind'] ?? 'http'),
            $http,
            $body,
            $globals['get'],
            $globals['post'],
            $globals['cookie'],
            $globals['files'],
            $scope,
            $message['task'] ?? null,
        );
    }

    /**
     * The response for what a handler returned and echoed, with the status and headers PHP
     * code set.
     *
     * @return array<string, mixed>
     */
    public function respond(string $id, mixed $result, string $output): array
    {
        [$status, $headers] = self::head();
        $body = $output;
        if ($result instanceof Response) {
            $status = $result->status();
            foreach ($result->headers() as $name => $values) {
                $headers[$name] = $values;
            }
            $body .= $result->body();
        } elseif (is_string($result) || is_int($result) || is_float($result)) {
            $body .= (string) $result;
        } elseif (is_array($result) || $result instanceof \JsonSerializable) {
            $body .= json_encode($result, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
            $headers['content-type'] ??= ['application/json'];
        } elseif ($result !== null && !is_bool($result)) {
            throw new \UnexpectedValueException(
                'a handler must return a string, an array, a Zeno\\Response or null, not ' . get_debug_type($result)
            );
        }
        $headers['content-type'] ??= [self::defaultContentType()];
        return Protocol::response($id, $status, $headers, $body);
    }

    /**
     * The status and headers PHP code has set so far (`http_response_code()`, `header()`).
     *
     * @return array{0: int, 1: array<string, list<string>>}
     */
    public static function head(): array
    {
        $status = http_response_code();
        $status = is_int($status) && $status > 0 ? $status : 200;
        $headers = [];
        foreach (headers_list() as $line) {
            $parts = explode(':', $line, 2);
            if (count($parts) === 2) {
                $headers[strtolower(trim($parts[0]))][] = ltrim($parts[1]);
            }
        }
        return [$status, $headers];
    }

    /** PHP's default content type, as PHP-FPM sends it when the script set none. */
    public static function defaultContentType(): string
    {
        return ini_get('default_mimetype') . '; charset=' . (ini_get('default_charset') ?: 'UTF-8');
    }

    /** Puts PHP's globals back as they were before any request. */
    public function leave(): void
    {
        self::resetHeaders();
        // A per-request setting under PHP-FPM; here it would outlive the request.
        ignore_user_abort(false);
        $_GET = $_POST = $_COOKIE = $_FILES = $_REQUEST = [];
        $_SERVER = $this->baseServer;
        $GLOBALS['_ZENO'] = [];
        PhpStream::setInput('');
    }

    /**
     * Clears header() state between requests. php-cgi (run with -q) accepts headers at any
     * time; the CLI SAPI keeps none and warns once output has started, so it is skipped there.
     */
    private static function resetHeaders(): void
    {
        if (PHP_SAPI === 'cli' && headers_sent()) {
            return;
        }
        header_remove();
        http_response_code(200);
    }
}
