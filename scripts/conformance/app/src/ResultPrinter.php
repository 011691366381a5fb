<?php

declare(strict_types=1);

namespace Zeno\Conformance;

use PHPUnit\Framework\AssertionFailedError;
use PHPUnit\Framework\Test;
use PHPUnit\Framework\TestCase;
use PHPUnit\Framework\Warning;
use PHPUnit\TextUI\DefaultResultPrinter;
use Throwable;

/**
 * PHPUnit's default printer, writing to a file instead of stdout, that also records every
 * finished test as one JSON line (test, status, exception class, message, where), so a run
 * that dies part-way still leaves the results of the tests before it.
 */
final class ResultPrinter extends DefaultResultPrinter
{
    public static string $progressPath = 'php://stderr';
    public static string $resultsPath = '';

    /** @var array<string, int> */
    private static array $tally = [];
    /** @var array<string, mixed>|null */
    private ?array $current = null;
    /** @var resource|null */
    private $results = null;

    public function __construct($out = null, bool $verbose = false, string $colors = self::COLOR_DEFAULT, bool $debug = false, $numberOfColumns = 80, bool $reverse = false)
    {
        parent::__construct(self::$progressPath, true, self::COLOR_NEVER, $debug, 100, $reverse);
        if (self::$resultsPath !== '') {
            $this->results = fopen(self::$resultsPath, 'ab') ?: null;
        }
    }

    /**
     * PHPUnit flushes (and so closes) its listeners' streams before it prints the result,
     * which this printer is too: keep the file open.
     */
    public function flush(): void
    {
    }

    /** @return array<string, int> */
    public static function counts(): array
    {
        return self::$tally;
    }

    public function startTest(Test $test): void
    {
        parent::startTest($test);
        $this->current = ['test' => self::name($test), 'status' => 'pass'];
        $this->emit(['event' => 'start', 'test' => $this->current['test']]);
    }

    public function addError(Test $test, Throwable $t, float $time): void
    {
        parent::addError($test, $t, $time);
        $this->mark('error', $t);
    }

    public function addFailure(Test $test, AssertionFailedError $e, float $time): void
    {
        parent::addFailure($test, $e, $time);
        $this->mark('failure', $e);
    }

    public function addWarning(Test $test, Warning $e, float $time): void
    {
        parent::addWarning($test, $e, $time);
        $this->mark('warning', $e);
    }

    public function addIncompleteTest(Test $test, Throwable $t, float $time): void
    {
        parent::addIncompleteTest($test, $t, $time);
        $this->mark('incomplete', $t);
    }

    public function addRiskyTest(Test $test, Throwable $t, float $time): void
    {
        parent::addRiskyTest($test, $t, $time);
        $this->mark('risky', $t);
    }

    public function addSkippedTest(Test $test, Throwable $t, float $time): void
    {
        parent::addSkippedTest($test, $t, $time);
        $this->mark('skipped', $t);
    }

    public function endTest(Test $test, float $time): void
    {
        parent::endTest($test, $time);
        $record = $this->current ?? ['test' => self::name($test), 'status' => 'pass'];
        $record['event'] = 'end';
        $record['time'] = round($time, 3);
        self::$tally[$record['status']] = (self::$tally[$record['status']] ?? 0) + 1;
        $this->emit($record);
        $this->current = null;
    }

    private function mark(string $status, Throwable $t): void
    {
        if ($this->current === null || $this->current['status'] !== 'pass') {
            return; // the first defect of a test is its status
        }
        $this->current['status'] = $status;
        $this->current['exception'] = $t instanceof \PHPUnit\Framework\ExceptionWrapper ? $t->getClassName() : get_class($t);
        $this->current['message'] = mb_substr(\PHPUnit\Framework\TestFailure::exceptionToString($t), 0, 2000);
        $this->current['where'] = self::where($t);
        $original = $t instanceof \PHPUnit\Framework\ExceptionWrapper ? $t->getOriginalException() : $t;
        $previous = $original?->getPrevious();
        if ($previous !== null) {
            $this->current['previous'] = get_class($previous) . ': ' . mb_substr($previous->getMessage(), 0, 500)
                . ' at ' . self::where($previous);
        }
    }

    /** The throw site, and the first frame outside PHPUnit and the framework's assertions. */
    private static function where(Throwable $t): string
    {
        if ($t instanceof \PHPUnit\Framework\ExceptionWrapper && $t->getOriginalException() !== null) {
            $t = $t->getOriginalException();
        }
        $file = $t->getFile() . ':' . $t->getLine();
        $frames = [];
        foreach ($t->getTrace() as $frame) {
            if (!isset($frame['file']) || str_contains($frame['file'], '/PHPUnit/')) {
                continue;
            }
            $frames[] = $frame['file'] . ':' . ($frame['line'] ?? 0);
            if (count($frames) === 4) {
                break;
            }
        }
        return trim($file . ' < ' . implode(' < ', $frames), ' <');
    }

    private static function name(Test $test): string
    {
        return $test instanceof TestCase ? get_class($test) . '::' . $test->getName() : get_class($test);
    }

    /** @param array<string, mixed> $record */
    private function emit(array $record): void
    {
        if ($this->results !== null) {
            fwrite($this->results, json_encode($record, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");
            fflush($this->results);
        }
    }
}
