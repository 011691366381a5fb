<?php

declare(strict_types=1);

namespace Zeno;

use Zeno\Runtime\Tasks;
use Zeno\Runtime\Worker;

/**
 * The application's door to the host, also available as the global `\Zeno`:
 * host functions, the request's scope, and the host's log.
 */
final class Zeno
{
    private static ?Worker $worker = null;

    /** @internal called by the runtime */
    public static function bind(?Worker $worker): void
    {
        self::$worker = $worker;
    }

    /**
     * Runs a host function and waits for its result.
     *
     * @param array<string, mixed> $parameters
     * @return array{success: bool, data: mixed, error: ?string, error_info: ?array<string, mixed>}
     */
    public static function call(string $function, array $parameters = []): array
    {
        if (self::$worker === null) {
            return [
                'success' => false,
                'data' => null,
                'error' => 'not running under the Zeno host',
                'error_info' => ['kind' => 'no_host'],
            ];
        }
        return self::$worker->hostCall($function, $parameters);
    }

    /**
     * Runs `$callback` after the response has been sent to the client (without a host, at
     * once). The worker takes its next request only when the callback has returned.
     */
    public static function defer(callable $callback): void
    {
        if (self::$worker === null) {
            $callback();
            return;
        }
        self::$worker->defer($callback);
    }

    /**
     * Whether the client of the current streamed response went away. Scripts that set
     * `ignore_user_abort(true)` keep running after that and can check here (PHP's own
     * `connection_aborted()` cannot see the host's client); others end at their next output.
     */
    public static function connectionAborted(): bool
    {
        return self::$worker !== null && self::$worker->aborted();
    }

    /** Whether this code runs in a worker of the Zeno host. */
    public static function running(): bool
    {
        return self::$worker !== null;
    }

    /**
     * Runs the callables at once on the host's task pool — warm workers of this same app —
     * and returns their results under the same keys, in the same order. Each task sees this
     * request's scope and has its own database transactions. If a task throws, the first
     * failure (in the given order) is thrown here, as the same class; a task past its timeout
     * throws {@see TaskTimedOut}, one whose worker died {@see TaskFailed}. Without a host (or
     * without a task pool) the callables run here, one after another.
     *
     * @param array<array-key, callable> $tasks closures (serialized with Laravel's SerializableClosure)
     * @param float|null $timeout seconds; the host's `tasks.exec_timeout` when null
     * @return array<array-key, mixed>
     */
    public static function concurrently(array $tasks, ?float $timeout = null): array
    {
        return Tasks::run($tasks, $timeout);
    }

    /**
     * Queues the callables on the host's task pool and returns at once: they run after this
     * request, on task workers, and nobody waits for them (failures are logged). Without a
     * task pool they run in this worker after the response.
     *
     * @param array<array-key, callable> $tasks
     */
    public static function deferTasks(array $tasks): void
    {
        Tasks::defer($tasks);
    }

    /** A value of the current request's scope (`$_ZENO`), or the whole scope. */
    public static function scope(?string $key = null, mixed $default = null): mixed
    {
        $scope = $GLOBALS['_ZENO'] ?? [];
        return $key === null ? $scope : ($scope[$key] ?? $default);
    }

    /**
     * Writes a record to the host's log, tagged with the current request.
     *
     * @param array<string, mixed> $context
     */
    public static function log(string $level, string $message, array $context = []): void
    {
        if (self::$worker === null) {
            error_log(sprintf('[%s] %s %s', $level, $message, $context === [] ? '' : json_encode($context)));
            return;
        }
        self::$worker->log($level, $message, $context);
    }
}
