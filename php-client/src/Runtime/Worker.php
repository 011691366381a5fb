<?php

declare(strict_types=1);

namespace Zeno\Runtime;

use Zeno\Request;
use Zeno\Response;
use Zeno\Zeno;

/**
 * The PHP side of a Zeno worker: boots the application once, then answers the host's
 * requests one at a time until the host says `stop` or closes stdin.
 *
 * Output discipline: protocol lines go to the stdout file descriptor directly; everything
 * PHP's output layer produces goes through an output buffer. During a request that buffer
 * becomes the response body; outside a request it is forwarded to stderr, so bootstrap
 * noise can never corrupt the protocol.
 */
final class Worker
{
    private const FATAL = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;

    private int $calls = 0;
    private ?string $current = null;
    private bool $stopRequested = false;
    /** @var array<string, mixed> */
    private array $baseServer;
    private int $captureLevel = 0;
    /** @var list<callable> work to run after the current request's response is sent */
    private array $deferred = [];
    /** The current request's response has been sent; only after-response work remains. */
    private bool $responded = false;

    /** @param resource $stderr */
    public function __construct(private Channel $channel, private $stderr, private string $app = 'handler')
    {
        $this->baseServer = $_SERVER;
        unset($this->baseServer['argv'], $this->baseServer['argc']);
    }

    /**
     * Runs a handler file (one that returns a callable) as a worker. Returns the exit code.
     */
    public static function main(string $handlerPath): int
    {
        $stderr = fopen('php://stderr', 'w');
        $channel = new Channel(fopen('php://stdin', 'r'), fopen('php://stdout', 'w'));
        ob_start(static function (string $buffer) use ($stderr): string {
            if ($buffer !== '') {
                fwrite($stderr, $buffer);
            }
            return '';
        }, 1);
        PhpStream::install();

        if ($handlerPath === '' || !is_file($handlerPath)) {
            fwrite($stderr, "zeno: handler file not found: '{$handlerPath}'\n");
            return 1;
        }
        $handlerPath = (string) realpath($handlerPath);
        // As under PHP-FPM, relative paths resolve from the handler's directory.
        chdir(dirname($handlerPath));
        $worker = new self($channel, $stderr, (string) (getenv('ZENO_APP') ?: 'handler'));
        $worker->baseServer['SCRIPT_FILENAME'] = $handlerPath;
        $worker->baseServer['DOCUMENT_ROOT'] = dirname($handlerPath);
        $worker->baseServer['SCRIPT_NAME'] = '/' . basename($handlerPath);
        $worker->baseServer['PHP_SELF'] = '/' . basename($handlerPath);
        Zeno::bind($worker);
        register_shutdown_function([$worker, 'onShutdown']);

        $handler = (static fn (string $path): mixed => require $path)($handlerPath);
        if (!is_callable($handler)) {
            fwrite($stderr, sprintf(
                "zeno: %s must return a callable (function (Zeno\\Request \$request) {...}), it returned %s\n",
                $handlerPath,
                get_debug_type($handler),
            ));
            return 1;
        }
        return $worker->run($handler);
    }

    /** Announces readiness, then serves until `stop` or end of input. */
    public function run(callable $handler): int
    {
        $this->channel->send([
            'type' => 'ready',
            'protocol' => 1,
            'pid' => getmypid(),
            'php' => PHP_VERSION,
            'app' => $this->app,
        ]);
        while (!$this->stopRequested && ($message = $this->channel->receive()) !== null) {
            switch ($message['type']) {
                case 'request':
                    $response = $this->handle($message, $handler);
                    if ($this->deferred === []) {
                        $this->channel->send($response);
                        break;
                    }
                    $response['terminating'] = true;
                    $this->channel->send($response);
                    $this->channel->send($this->finish((string) $message['id']));
                    break;
                case 'stop':
                    $this->stopRequested = true;
                    break;
                default:
                    fwrite($this->stderr, "zeno: ignoring unexpected '{$message['type']}' message\n");
            }
        }
        return 0;
    }

    /**
     * Runs one request through the handler and returns the `response` message.
     *
     * @param array<string, mixed> $message
     * @return array<string, mixed>
     */
    public function handle(array $message, callable $handler): array
    {
        $id = (string) $message['id'];
        $kind = (string) ($message['kind'] ?? 'http');
        $http = is_array($message['http'] ?? null) ? $message['http'] : [];
        $scope = is_array($message['_zeno_scope'] ?? null) ? $message['_zeno_scope'] : [];
        $body = isset($http['body_b64']) ? (string) base64_decode((string) $http['body_b64'], true) : (string) ($http['body'] ?? '');

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

        $request = new Request(
            $id,
            $kind,
            $http,
            $body,
            $globals['get'],
            $globals['post'],
            $globals['cookie'],
            $globals['files'],
            $scope,
            $message['task'] ?? null,
        );

        $this->current = $id;
        ob_start();
        $this->captureLevel = ob_get_level();
        try {
            $result = $handler($request);
            $response = $this->respond($result, $this->collectOutput());
        } catch (\Throwable $e) {
            $this->collectOutput();
            $this->log('error', 'Uncaught ' . get_class($e) . ': ' . $e->getMessage(), [
                'exception' => get_class($e),
                'file' => $e->getFile(),
                'line' => $e->getLine(),
                'trace' => $e->getTraceAsString(),
            ]);
            $response = $this->errorResponse(500);
        } finally {
            $this->current = null;
            $this->reset();
        }
        $response['id'] = $id;
        return $response;
    }

    /**
     * Runs `$callback` after the current request's response has gone to the client (as
     * Laravel's terminate() and PHP-FPM's fastcgi_finish_request() allow). The worker takes
     * no other request until it returns.
     */
    public function defer(callable $callback): void
    {
        $this->deferred[] = $callback;
    }

    /**
     * Runs the deferred callbacks of request `$id`, whose response was sent, and returns the
     * `done` message. Their output goes to stderr; an exception is logged and the rest run.
     *
     * @return array<string, mixed>
     */
    public function finish(string $id): array
    {
        $this->current = $id;
        $this->responded = true;
        try {
            while (($callback = array_shift($this->deferred)) !== null) {
                try {
                    $callback();
                } catch (\Throwable $e) {
                    $this->log('error', 'Uncaught ' . get_class($e) . ' after the response: ' . $e->getMessage(), [
                        'exception' => get_class($e),
                        'file' => $e->getFile(),
                        'line' => $e->getLine(),
                    ]);
                }
            }
        } finally {
            $this->current = null;
            $this->responded = false;
            $this->deferred = [];
            $this->reset();
        }
        return ['type' => 'done', 'id' => $id];
    }

    /**
     * Sends a host_call and blocks until its host_result arrives.
     *
     * @param array<string, mixed> $parameters
     * @return array{success: bool, data: mixed, error: ?string, error_info: ?array<string, mixed>}
     */
    public function hostCall(string $function, array $parameters): array
    {
        $id = 'c-' . (++$this->calls);
        $this->channel->send([
            'type' => 'host_call',
            'id' => $id,
            'request' => $this->current ?? '',
            'function' => $function,
            'parameters' => $parameters === [] ? new \stdClass() : $parameters,
        ]);
        while (($message = $this->channel->receive()) !== null) {
            if ($message['type'] === 'host_result' && ($message['id'] ?? null) === $id) {
                return [
                    'success' => (bool) ($message['success'] ?? false),
                    'data' => $message['data'] ?? null,
                    'error' => $message['error'] ?? null,
                    'error_info' => $message['error_info'] ?? null,
                ];
            }
            if ($message['type'] === 'stop') {
                $this->stopRequested = true;
            }
        }
        throw new \RuntimeException('the host closed the connection during a host call');
    }

    /** @param array<string, mixed> $context */
    public function log(string $level, string $message, array $context = []): void
    {
        $record = [
            'type' => 'log',
            'level' => $level,
            'message' => $message,
            'context' => $context === [] ? new \stdClass() : $context,
        ];
        if ($this->current !== null) {
            $record['request'] = $this->current;
        }
        $this->channel->send($record);
    }

    /**
     * Runs at process end. A fatal error (or `exit`) during a request still answers that
     * request, so the host never waits on a worker that is gone.
     */
    public function onShutdown(): void
    {
        if ($this->current === null) {
            return;
        }
        $id = $this->current;
        $this->current = null;
        $output = $this->collectOutput();
        $error = error_get_last();
        if ($this->responded) {
            // The client has its response; only the after-response work died.
            if ($error !== null && ($error['type'] & self::FATAL) !== 0) {
                $this->log('error', sprintf('PHP Fatal error after the response: %s in %s:%d', $error['message'], $error['file'], $error['line']));
            }
            try {
                $this->channel->send(['type' => 'done', 'id' => $id, 'exiting' => true]);
            } catch (\Throwable) {
                // The pipe is gone; the host sees the exit.
            }
            return;
        }
        try {
            if ($error !== null && ($error['type'] & self::FATAL) !== 0) {
                $this->log('error', sprintf('PHP Fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line']), [
                    'request' => $id,
                ]);
                $response = $this->errorResponse(500);
            } else {
                $response = $this->respond(null, $output);
            }
            $response['id'] = $id;
            $response['exiting'] = true;
            $this->channel->send($response);
        } catch (\Throwable) {
            // The pipe is gone; the host answers the request itself when it sees the exit.
        }
    }

    /** Everything echoed since the request started, including buffers the app left open. */
    private function collectOutput(): string
    {
        if ($this->captureLevel === 0) {
            return '';
        }
        while (ob_get_level() > $this->captureLevel) {
            ob_end_flush();
        }
        $output = ob_get_level() === $this->captureLevel ? (string) ob_get_clean() : '';
        $this->captureLevel = 0;
        return $output;
    }

    /** @return array<string, mixed> */
    private function respond(mixed $result, string $output): array
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
        $headers['content-type'] ??= [ini_get('default_mimetype') . '; charset=' . (ini_get('default_charset') ?: 'UTF-8')];
        return ['type' => 'response', 'status' => $status, 'headers' => $headers] + self::body($body);
    }

    /** @return array<string, mixed> */
    private function errorResponse(int $status): array
    {
        return [
            'type' => 'response',
            'status' => $status,
            'headers' => ['content-type' => ['text/plain; charset=UTF-8']],
            'body' => "Internal Server Error\n",
        ];
    }

    /** @return array<string, string> `body` for UTF-8, `body_b64` for anything else */
    public static function body(string $bytes): array
    {
        if ($bytes === '') {
            return [];
        }
        return preg_match('//u', $bytes) === 1 ? ['body' => $bytes] : ['body_b64' => base64_encode($bytes)];
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

    private function reset(): void
    {
        self::resetHeaders();
        $_GET = $_POST = $_COOKIE = $_FILES = $_REQUEST = [];
        $_SERVER = $this->baseServer;
        $GLOBALS['_ZENO'] = [];
        PhpStream::setInput('');
    }
}
