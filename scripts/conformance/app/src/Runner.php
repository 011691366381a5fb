<?php

declare(strict_types=1);

namespace Zeno\Conformance;

/**
 * Runs laravel/framework's tests with PHPUnit in the current process, as a spec says:
 *
 *   laravel_tests  the framework's source tree (tests/ is autoloaded as Illuminate\Tests\)
 *   testbench      an orchestra/testbench-core tree (src/ is Orchestra\Testbench\)
 *   base_path      the testbench application skeleton (APP_BASE_PATH)
 *   env            environment variables for the tests (DB_CONNECTION, DB_HOST, …)
 *   results        a JSON-lines file: one line per finished test
 *   progress       PHPUnit's own progress output goes here (never to stdout: under a worker,
 *                  stdout is the protocol)
 *   junit          PHPUnit's JUnit log
 *   phpunit_xml    the PHPUnit configuration
 *   args           further PHPUnit arguments (--filter …) and the test directory
 */
final class Runner
{
    /** @var array<string, int> */
    private static array $counts = [];

    public static function run(string $specPath): int
    {
        $spec = json_decode((string) @file_get_contents($specPath), true);
        if (!is_array($spec)) {
            fwrite(fopen('php://stderr', 'w'), "conformance: cannot read the spec {$specPath}\n");
            return 2;
        }
        ini_set('memory_limit', '2048M');
        ini_set('date.timezone', 'UTC');
        date_default_timezone_set('UTC');
        set_time_limit(0);

        foreach ((array) ($spec['env'] ?? []) as $name => $value) {
            putenv("{$name}={$value}");
            $_ENV[$name] = $value;
            $_SERVER[$name] = $value;
        }
        putenv('APP_BASE_PATH=' . $spec['base_path']);
        $_ENV['APP_BASE_PATH'] = $_SERVER['APP_BASE_PATH'] = $spec['base_path'];

        self::autoload((string) $spec['laravel_tests'], (string) $spec['testbench']);

        ResultPrinter::$progressPath = (string) $spec['progress'];
        ResultPrinter::$resultsPath = (string) $spec['results'];
        @unlink(ResultPrinter::$resultsPath);

        $argv = [
            'phpunit',
            '--configuration', (string) $spec['phpunit_xml'],
            '--printer', ResultPrinter::class,
            '--log-junit', (string) $spec['junit'],
            ...array_map('strval', (array) ($spec['args'] ?? [])),
        ];
        $status = (new \PHPUnit\TextUI\Command())->run($argv, false);
        self::$counts = ResultPrinter::counts();
        return $status;
    }

    public static function summary(): string
    {
        $parts = [];
        foreach (self::$counts as $status => $n) {
            $parts[] = "{$status} {$n}";
        }
        // Proof that the run went through the host: the driver's PDO class was loaded.
        $proxy = class_exists(\Zeno\Laravel\Database\ZenoPdo::class, false) ? ' (zeno_proxy used)' : '';
        return 'conformance: ' . ($parts === [] ? 'no tests ran' : implode(', ', $parts)) . $proxy;
    }

    private static function autoload(string $laravel, string $testbench): void
    {
        require_once 'PHPUnit/Autoload.php';
        foreach (['Mockery/autoload.php', 'Doctrine/DBAL/autoload.php'] as $file) {
            if (stream_resolve_include_path($file) !== false) {
                require_once $file;
            }
        }
        $roots = [
            'Illuminate\\Tests\\' => rtrim($laravel, '/') . '/tests/',
            'Orchestra\\Testbench\\' => rtrim($testbench, '/') . '/src/',
        ];
        spl_autoload_register(static function (string $class) use ($roots): void {
            foreach ($roots as $prefix => $dir) {
                if (strncmp($class, $prefix, strlen($prefix)) === 0) {
                    $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                    if (is_file($file)) {
                        require $file;
                    }
                    return;
                }
            }
        });
        if (is_file($helpers = rtrim($testbench, '/') . '/src/helpers.php')) {
            require_once $helpers;
        }
    }
}
