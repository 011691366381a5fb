<?php

declare(strict_types=1);

// php compare.php BACKEND NATIVE.jsonl ZENO.jsonl FAILURES.txt [LABEL]
// Prints "<backend>: N of M natively passing tests pass under zeno_proxy" and writes the
// tests that pass natively but not under zeno_proxy, and those that fail natively.

[, $backend, $nativePath, $zenoPath, $out, $label] = $argv + array_fill(0, 6, '');
$label = $label !== '' ? $label : 'zeno_proxy';

/** @return array{0: array<string, array<string, mixed>>, 1: ?string} results by test, and a test that started but never ended */
function load(string $path): array
{
    $results = [];
    $open = null;
    foreach (is_file($path) ? file($path, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) : [] as $line) {
        $r = json_decode($line, true);
        if (!is_array($r)) {
            continue;
        }
        if (($r['event'] ?? '') === 'start') {
            $open = $r['test'];
        } else {
            $results[$r['test']] = $r;
            $open = null;
        }
    }
    return [$results, $open];
}

function firstLine(array $r): string
{
    $message = trim((string) ($r['message'] ?? ''));
    $line = strtok($message, "\n");
    return $line === false ? '' : $line;
}

[$native, $nativeOpen] = load($nativePath);
[$zeno, $zenoOpen] = load($zenoPath);

$passing = array_keys(array_filter($native, static fn (array $r): bool => $r['status'] === 'pass'));
$failing = [];
foreach ($passing as $test) {
    $z = $zeno[$test] ?? null;
    if ($z !== null && $z['status'] === 'pass') {
        continue;
    }
    $failing[$test] = $z ?? ['status' => 'not-run', 'message' => $zenoOpen !== null
        ? "the {$label} run ended during {$zenoOpen}" : "not run under {$label}"];
}

$lines = ["# {$backend}: natively passing tests that do not pass under {$label}", "# test\tstatus\texception\tfirst line of the error\twhere"];
foreach ($failing as $test => $r) {
    $lines[] = implode("\t", [$test, $r['status'], $r['exception'] ?? '', firstLine($r), $r['where'] ?? '']);
}
$lines[] = '';
$lines[] = "# {$backend}: tests that do not pass natively (not counted)";
foreach ($native as $test => $r) {
    if ($r['status'] !== 'pass') {
        $lines[] = implode("\t", [$test, $r['status'], $r['exception'] ?? '', firstLine($r)]);
    }
}
if ($nativeOpen !== null) {
    $lines[] = "# the native run ended during {$nativeOpen}";
}
file_put_contents($out, implode("\n", $lines) . "\n");

printf("%s: %d of %d natively passing tests pass under %s\n", $backend, count($passing) - count($failing), count($passing), $label);
