<?php

declare(strict_types=1);

namespace Zeno\Runtime;

use Laravel\SerializableClosure\SerializableClosure;
use Zeno\TaskFailed;
use Zeno\TaskTimedOut;
use Zeno\Zeno;

/**
 * Closures run on the host's task pool, both ends.
 *
 * The caller serializes each closure (Laravel's SerializableClosure, as Laravel's process
 * driver does), sends the batch with the `tasks_run` host call and waits; the host runs each
 * task on a task worker at once. There {@see Tasks::serve()} unserializes the closure, runs
 * it through the app's invoker (Laravel's container, so parameters are injected; the worker logs
 * what it prints, never mixing it into the result) and answers with the serialized result
 * or the exception. Back in the caller, results come out under the caller's keys, in the
 * caller's order, and the first failure is thrown as the task's own exception class.
 *
 * A task the host answers `inline` (no task pool, or a nested batch with no free task worker)
 * runs in the caller, so a batch always completes.
 */
final class Tasks
{
    /** The payload key that marks a task as a closure for the runtime, not for the handler. */
    public const MARK = 'zeno_closure';

    /** @var (\Closure(\Closure, array<string, mixed>): mixed)|null how the app runs a task */
    private static ?\Closure $invoker = null;

    /** @var (\Closure(): ?array<string, mixed>)|null what the caller passes along (Laravel's Context) */
    private static ?\Closure $context = null;

    /**
     * How this app runs a task closure and what each task carries from its caller: Laravel
     * runs it through its container and carries its Context.
     *
     * @param \Closure(\Closure, array<string, mixed>): mixed $invoker gets the closure and the payload
     * @param (\Closure(): ?array<string, mixed>)|null $context
     */
    public static function useInvoker(\Closure $invoker, ?\Closure $context = null): void
    {
        self::$invoker = $invoker;
        self::$context = $context;
    }

    /**
     * Runs `$tasks` at once on the task pool and returns their results under the same keys.
     *
     * @param array<array-key, callable> $tasks
     * @return array<array-key, mixed>
     */
    public static function run(array $tasks, ?float $timeoutSeconds = null): array
    {
        if ($tasks === []) {
            return [];
        }
        if (!Zeno::running()) {
            return self::runInline($tasks);
        }
        $batch = self::batch($tasks);
        if ($timeoutSeconds !== null) {
            $batch['timeout_ms'] = max(1, (int) round($timeoutSeconds * 1000));
        }
        $answer = Zeno::call('tasks_run', $batch);
        if (!$answer['success']) {
            throw new TaskFailed('the host could not run the tasks: ' . ($answer['error'] ?? 'unknown error'));
        }
        $outcomes = is_array($answer['data']['results'] ?? null) ? $answer['data']['results'] : [];
        $results = [];
        $failure = null;
        $index = 0;
        foreach ($tasks as $key => $task) {
            $outcome = is_array($outcomes[$index] ?? null) ? $outcomes[$index] : ['status' => 'lost', 'message' => 'no answer'];
            $index++;
            try {
                $results[$key] = self::result($key, $task, $outcome);
            } catch (\Throwable $e) {
                // As Laravel's drivers do: every task runs to its end, then the first failure
                // (in the caller's order) is thrown.
                $failure ??= $e;
            }
        }
        if ($failure !== null) {
            throw $failure;
        }
        return $results;
    }

    /**
     * Queues `$tasks` on the task pool and returns at once; nobody waits for their results.
     * Without a task pool (or a host) they run here, after the response.
     *
     * @param array<array-key, callable> $tasks
     */
    public static function defer(array $tasks): void
    {
        if ($tasks === []) {
            return;
        }
        if (Zeno::running()) {
            $answer = Zeno::call('tasks_defer', self::batch($tasks));
            if ($answer['success']) {
                return;
            }
            if (($answer['error_info']['kind'] ?? null) !== 'no_task_pool') {
                throw new TaskFailed('the host could not queue the deferred tasks: ' . ($answer['error'] ?? 'unknown error'));
            }
        }
        Zeno::defer(static function () use ($tasks): void {
            foreach ($tasks as $key => $task) {
                try {
                    self::inline($task);
                } catch (\Throwable $e) {
                    Zeno::log('error', "deferred task {$key} threw " . get_class($e) . ': ' . $e->getMessage(), [
                        'exception' => get_class($e),
                        'trace' => $e->getTraceAsString(),
                    ]);
                }
            }
        });
    }

    /**
     * The task worker's side: runs the task in `$payload` and returns the JSON the host reads
     * (`{"status": "ok", "result": ...}` or `{"status": "failed", "exception": {...}}`).
     *
     * @param array<string, mixed> $payload
     */
    public static function serve(array $payload): string
    {
        self::loadSerializableClosure();
        try {
            $wrapped = unserialize((string) base64_decode((string) $payload[self::MARK], true));
            if (!$wrapped instanceof SerializableClosure) {
                throw new TaskFailed('the task is not a serialized closure');
            }
            $result = self::invoke($wrapped->getClosure(), $payload);
            $answer = ['status' => 'ok', 'result' => base64_encode(serialize($result))];
        } catch (\Throwable $e) {
            Zeno::log('error', 'task threw ' . get_class($e) . ': ' . $e->getMessage(), [
                'exception' => get_class($e),
                'file' => $e->getFile(),
                'line' => $e->getLine(),
                'trace' => $e->getTraceAsString(),
            ]);
            $answer = ['status' => 'failed', 'exception' => self::describe($e)];
        }
        return self::answer($answer);
    }

    /** The answer for a task that ended its worker (`exit`, a fatal error) before returning. */
    public static function ended(string $why): string
    {
        $failure = new TaskFailed("the task ended its worker before returning ({$why}); the worker was replaced");
        return self::answer(['status' => 'failed', 'exception' => self::describe($failure)]);
    }

    /**
     * What a task printed goes to the host's log, never into its result.
     */
    public static function logOutput(string $printed): void
    {
        if ($printed !== '') {
            Zeno::log('info', 'task output', ['output' => mb_strcut($printed, 0, 65536)]);
        }
    }

    /** @param array<string, mixed> $answer */
    private static function answer(array $answer): string
    {
        return json_encode($answer, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR);
    }

    /**
     * @param array<array-key, callable> $tasks
     * @return array{tasks: list<array{name: string, payload: array<string, mixed>}>}
     */
    private static function batch(array $tasks): array
    {
        self::loadSerializableClosure();
        $context = self::$context !== null ? (self::$context)() : null;
        $batch = [];
        foreach ($tasks as $key => $task) {
            if (!is_callable($task)) {
                throw new \InvalidArgumentException("task {$key} is not callable");
            }
            $closure = \Closure::fromCallable($task);
            $payload = [self::MARK => base64_encode(serialize(new SerializableClosure($closure)))];
            if ($context !== null) {
                $payload['context'] = $context;
            }
            $batch[] = ['name' => is_string($key) ? $key : self::where($closure, $key), 'payload' => $payload];
        }
        return ['tasks' => $batch];
    }

    /**
     * @param array<string, mixed> $outcome
     */
    private static function result(int|string $key, callable $task, array $outcome): mixed
    {
        $status = (string) ($outcome['status'] ?? 'lost');
        return match ($status) {
            'ok' => unserialize((string) base64_decode((string) ($outcome['result'] ?? ''), true)),
            'inline' => self::inline($task),
            'failed' => throw self::rebuild(is_array($outcome['exception'] ?? null) ? $outcome['exception'] : []),
            'timeout' => throw new TaskTimedOut((string) ($outcome['message'] ?? "task {$key} timed out")),
            default => throw new TaskFailed((string) ($outcome['message'] ?? "task {$key} was lost")),
        };
    }

    /**
     * Runs a task in the caller. What it prints goes to the log, as on a task worker, so it
     * never lands in the caller's response.
     */
    private static function inline(callable $task): mixed
    {
        ob_start();
        try {
            return self::invoke(\Closure::fromCallable($task), []);
        } finally {
            self::logOutput((string) ob_get_clean());
        }
    }

    /** @param array<string, mixed> $payload */
    private static function invoke(\Closure $closure, array $payload): mixed
    {
        return self::$invoker !== null ? (self::$invoker)($closure, $payload) : $closure();
    }

    /**
     * @param array<array-key, callable> $tasks
     * @return array<array-key, mixed>
     */
    private static function runInline(array $tasks): array
    {
        $results = [];
        foreach ($tasks as $key => $task) {
            $results[$key] = self::inline($task);
        }
        return $results;
    }

    /** Where the closure was written, to name a task in logs. */
    private static function where(\Closure $closure, int $key): string
    {
        $reflection = new \ReflectionFunction($closure);
        $file = $reflection->getFileName();
        return $file === false ? "task {$key}" : sprintf('task %d (%s:%d)', $key, basename($file), (int) $reflection->getStartLine());
    }

    /**
     * What the caller needs to throw the same exception: its class, message and code, and the
     * exception itself serialized without its trace (arguments in a trace are often not
     * serializable; the trace is in the log).
     *
     * @return array<string, mixed>
     */
    private static function describe(\Throwable $e): array
    {
        $serialized = null;
        try {
            $serialized = base64_encode(serialize(self::withoutTraces($e)));
        } catch (\Throwable) {
            // A property that cannot be serialized (a closure, a resource): class, message
            // and code still come back.
        }
        return [
            'class' => get_class($e),
            'message' => $e->getMessage(),
            'code' => is_int($e->getCode()) ? $e->getCode() : 0,
            'file' => $e->getFile(),
            'line' => $e->getLine(),
            'serialized' => $serialized,
        ];
    }

    private static function withoutTraces(\Throwable $e): \Throwable
    {
        for ($current = $e; $current !== null; $current = $current->getPrevious()) {
            $base = $current instanceof \Exception ? \Exception::class : \Error::class;
            $trace = new \ReflectionProperty($base, 'trace');
            $trace->setValue($current, []);
        }
        return $e;
    }

    /** @param array<string, mixed> $info */
    private static function rebuild(array $info): \Throwable
    {
        $class = (string) ($info['class'] ?? '');
        $message = (string) ($info['message'] ?? '');
        if (is_string($info['serialized'] ?? null)) {
            try {
                $e = @unserialize((string) base64_decode($info['serialized'], true));
                if ($e instanceof \Throwable && get_class($e) === $class) {
                    return $e;
                }
            } catch (\Throwable) {
                // Fall back to building it from class, message and code.
            }
        }
        if ($class !== '' && class_exists($class) && is_a($class, \Throwable::class, true)) {
            try {
                $e = (new \ReflectionClass($class))->newInstanceWithoutConstructor();
                $base = $e instanceof \Exception ? \Exception::class : \Error::class;
                foreach (['message' => $message, 'code' => (int) ($info['code'] ?? 0), 'file' => (string) ($info['file'] ?? ''), 'line' => (int) ($info['line'] ?? 0)] as $name => $value) {
                    (new \ReflectionProperty($base, $name))->setValue($e, $value);
                }
                return $e;
            } catch (\Throwable) {
                // An internal class that cannot be made without its constructor.
            }
        }
        return new TaskFailed(sprintf('a task threw %s: %s', $class !== '' ? $class : 'an exception', $message), (int) ($info['code'] ?? 0));
    }

    private static function loadSerializableClosure(): void
    {
        if (class_exists(SerializableClosure::class)) {
            return;
        }
        // Debian's php-laravel-serializable-closure, for apps without composer.
        $autoload = stream_resolve_include_path('Laravel/SerializableClosure/autoload.php');
        if ($autoload !== false) {
            require_once $autoload;
        }
        if (!class_exists(SerializableClosure::class)) {
            throw new TaskFailed('running closures as tasks needs laravel/serializable-closure (composer require laravel/serializable-closure, or apt install php-laravel-serializable-closure)');
        }
    }
}
