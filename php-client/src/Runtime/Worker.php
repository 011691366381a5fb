<?php

declare(strict_types=1);

namespace Zeno\Runtime;

use Zeno\Zeno;

/**
 * The PHP side of a Zeno worker: boots the application once, then answers the host's
 * requests one at a time until the host says `stop` or closes stdin.
 *
 * The parts: {@see Channel} carries messages, {@see Protocol} builds them, {@see Exchange}
 * maps one request in and out of PHP's globals, {@see Output} captures what it echoes, and
 * {@see Deferred} holds its after-response work. This class is the loop that ties them.
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
    private Exchange $exchange;
    private Output $output;
    private Deferred $deferred;
    /** The current request's response has been sent; only after-response work remains. */
    private bool $responded = false;
    /** The current request is a closure for the task pool. */
    private bool $inTask = false;
    /** The current response is being streamed: its head is sent, `chunk`s follow. */
    private bool $streaming = false;
    /** The head sent when streaming began, to notice headers set too late. */
    private string $sentHead = '';
    /** The client of the current stream went away. */
    private bool $aborted = false;
    /** What the current task printed (it goes to the log, not into the result). */
    private string $taskOutput = '';

    /** @param resource $stderr */
    public function __construct(private Channel $channel, private $stderr, private string $app = 'handler')
    {
        $this->baseServer = $_SERVER;
        unset($this->baseServer['argv'], $this->baseServer['argc']);
        $this->exchange = new Exchange($this->baseServer);
        $this->output = new Output();
        $this->deferred = new Deferred();
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
        $_SERVER['SCRIPT_FILENAME'] = $handlerPath;
        $_SERVER['DOCUMENT_ROOT'] = dirname($handlerPath);
        $_SERVER['SCRIPT_NAME'] = '/' . basename($handlerPath);
        $_SERVER['PHP_SELF'] = '/' . basename($handlerPath);
        $worker = new self($channel, $stderr, (string) (getenv('ZENO_APP') ?: 'handler'));
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
        $this->channel->send(Protocol::ready($this->app));
        while (!$this->stopRequested && ($message = $this->channel->receive()) !== null) {
            match ($message['type']) {
                'request' => $this->serve($message, $handler),
                'stop' => $this->stopRequested = true,
                default => fwrite($this->stderr, "zeno: ignoring unexpected '{$message['type']}' message\n"),
            };
        }
        return 0;
    }

    /**
     * One request, start to end: its response, then — if it deferred work — `terminating`,
     * the work, and `done`. HTTP requests and tasks take the same path; the handler tells
     * them apart by `Zeno\Request::kind()`.
     *
     * @param array<string, mixed> $message
     */
    private function serve(array $message, callable $handler): void
    {
        $response = $this->handle($message, $handler);
        if ($this->deferred->isEmpty()) {
            $this->channel->send($response);
            return;
        }
        $response['terminating'] = true;
        $this->channel->send($response);
        $this->channel->send($this->finish((string) $message['id']));
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
        $request = $this->exchange->enter($message);
        $this->current = $id;
        $task = $message['task'] ?? null;
        $isTask = is_array($task) && isset($task[Tasks::MARK]);
        $this->taskOutput = '';
        $this->output->start($isTask
            ? function (string $bytes): void {
                $this->taskOutput .= $bytes;
            }
            : fn (string $bytes) => $this->stream($id, $bytes));
        try {
            if ($isTask) {
                // A closure for the task pool: the runtime runs it, not the handler. What it
                // prints goes to the log, never into its result.
                $this->inTask = true;
                $answer = Tasks::serve($task);
                $this->inTask = false;
                Tasks::logOutput($this->taskOutput . $this->output->collect());
                return Protocol::response($id, 200, ['content-type' => ['application/json']], $answer);
            }
            $result = $handler($request);
            $response = $this->exchange->respond($id, $result, $this->output->collect());
            return $this->streaming ? $this->endStream($id, $response) : $response;
        } catch (\Throwable $e) {
            $this->output->collect();
            $this->report('Uncaught ' . get_class($e) . ': ' . $e->getMessage(), $e, true);
            // Mid-stream the status is gone: the body just ends (as under PHP-FPM).
            return $this->streaming ? $this->endStream($id, null) : Protocol::error($id);
        } finally {
            $this->current = null;
            $this->inTask = false;
            $this->streaming = false;
            $this->aborted = false;
            $this->exchange->leave();
        }
    }

    /**
     * Sends output that must leave now: the response head first (status and headers as PHP
     * code set them so far), then each part as a `chunk`, waiting for the host to take it —
     * so a slow client slows this script down. When the client has gone away, the script
     * ends here, at its output, as under PHP-FPM; with `ignore_user_abort(true)` it goes on
     * and its output is dropped.
     */
    private function stream(string $id, string $bytes): void
    {
        if ($this->aborted) {
            return;
        }
        if (!$this->streaming) {
            [$status, $headers] = Exchange::head();
            $headers['content-type'] ??= [Exchange::defaultContentType()];
            $this->channel->send(Protocol::response($id, $status, $headers, '', stream: true));
            $this->streaming = true;
            $this->sentHead = serialize([$status, $headers]);
        }
        if ($bytes === '') {
            return;
        }
        $this->channel->sendChunk($id, $bytes);
        while (($message = $this->channel->receive()) !== null) {
            if (($message['id'] ?? null) !== $id) {
                if ($message['type'] === 'stop') {
                    $this->stopRequested = true;
                }
                continue;
            }
            if ($message['type'] === 'ack') {
                return;
            }
            if ($message['type'] === 'abort') {
                $this->aborted = true;
                if (!ignore_user_abort()) {
                    exit(0);
                }
                return;
            }
        }
        throw new \RuntimeException('the host closed the connection during a stream');
    }

    /**
     * The last part of a streamed response (what was still buffered, and the handler's
     * return value), and the `end` message.
     *
     * @param array<string, mixed>|null $response the response as if it had not been streamed
     * @return array<string, mixed>
     */
    private function endStream(string $id, ?array $response): array
    {
        if ($response !== null) {
            $rest = isset($response['body_b64']) ? (string) base64_decode((string) $response['body_b64'], true) : (string) ($response['body'] ?? '');
            $this->stream($id, $rest);
            if (serialize([$response['status'], $response['headers']]) !== $this->sentHead) {
                $this->log('warning', 'status or headers set after the response started streaming were not sent (headers already sent)');
            }
        }
        return Protocol::end($id);
    }

    /** Whether the client of the current streamed response went away (see ignore_user_abort()). */
    public function aborted(): bool
    {
        return $this->aborted;
    }

    /**
     * Runs `$callback` after the current request's response has gone to the client (as
     * Laravel's terminate() and PHP-FPM's fastcgi_finish_request() allow). The worker takes
     * no other request until it returns.
     */
    public function defer(callable $callback): void
    {
        $this->deferred->add($callback);
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
            $this->deferred->run(function (\Throwable $e): void {
                $this->report('Uncaught ' . get_class($e) . ' after the response: ' . $e->getMessage(), $e, false);
            });
        } finally {
            $this->current = null;
            $this->responded = false;
            $this->exchange->leave();
        }
        return Protocol::done($id);
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
        $this->channel->send(Protocol::hostCall($id, $this->current ?? '', $function, $parameters));
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
        $this->channel->send(Protocol::log($level, $message, $context, $this->current));
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
        $output = $this->output->collect();
        $error = error_get_last();
        $fatal = $error !== null && ($error['type'] & self::FATAL) !== 0;
        try {
            if ($this->streaming && !$this->responded) {
                // `exit` (or a fatal error) mid-stream, or the end a gone client caused: what
                // was echoed still goes out, then the body ends.
                if ($fatal) {
                    $this->log('error', sprintf('PHP Fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line']));
                }
                if ($output !== '' && !$this->aborted) {
                    $this->stream($id, $output);
                }
                $this->current = null;
                $this->channel->send(Protocol::end($id, exiting: true));
                return;
            }
            $this->current = null;
            if ($this->responded) {
                // The client has its response; only the after-response work died.
                if ($fatal) {
                    $this->log('error', sprintf('PHP Fatal error after the response: %s in %s:%d', $error['message'], $error['file'], $error['line']));
                }
                $this->channel->send(Protocol::done($id, exiting: true));
                return;
            }
            if ($this->inTask) {
                // The caller gets a failure that says what ended the worker.
                $why = $fatal ? sprintf('a fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line']) : 'exit';
                Tasks::logOutput($output);
                $this->channel->send(Protocol::response($id, 200, ['content-type' => ['application/json']], Tasks::ended($why), exiting: true));
                return;
            }
            if ($fatal) {
                $this->log('error', sprintf('PHP Fatal error: %s in %s:%d', $error['message'], $error['file'], $error['line']), [
                    'request' => $id,
                ]);
                $this->channel->send(Protocol::error($id, exiting: true));
                return;
            }
            $response = $this->exchange->respond($id, null, $output);
            $response['exiting'] = true;
            $this->channel->send($response);
        } catch (\Throwable) {
            // The pipe is gone; the host answers the request itself when it sees the exit.
        }
    }

    /** Logs an exception with where it came from (and its trace, for a request's own). */
    private function report(string $message, \Throwable $e, bool $withTrace): void
    {
        $context = [
            'exception' => get_class($e),
            'file' => $e->getFile(),
            'line' => $e->getLine(),
        ];
        if ($withTrace) {
            $context['trace'] = $e->getTraceAsString();
        }
        $this->log('error', $message, $context);
    }
}
