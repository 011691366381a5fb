<?php

declare(strict_types=1);

// What the PHP runtime itself costs per request, without the pipes: decoding a request
// line, entering it into PHP's globals, running a one-line handler, building the response,
// putting the globals back, encoding the response line. Run with php-cgi -q (as workers
// are): `php-cgi -q bench/runtime-cost.php [N]`. Prints microseconds per request for each
// step, median of 5 rounds.

require __DIR__ . '/../php-client/src/autoload.php';

use Zeno\Runtime\Channel;
use Zeno\Runtime\Worker;

$n = (int) ($argv[1] ?? $_GET['n'] ?? 20000);
// A request as the host sends it for `wrk` hitting GET /?name=bench.
$line = json_encode([
    'type' => 'request', 'id' => 'r-1', 'kind' => 'http',
    'http' => [
        'method' => 'GET', 'uri' => '/?name=bench', 'path' => '/', 'query' => 'name=bench',
        'protocol' => 'HTTP/1.1', 'scheme' => 'http', 'remote_addr' => '127.0.0.1:50514',
        'server_addr' => '127.0.0.1:8080',
        'headers' => ['host' => ['127.0.0.1:8080'], 'user-agent' => ['wrk'], 'accept' => ['*/*'],
            'accept-encoding' => ['gzip'], 'connection' => ['keep-alive'],
            'x-request-id' => ['abc'], 'cookie' => ['a=1; b=2']],
        'body' => '',
    ],
    '_zeno_scope' => ['request_id' => 'r-1'],
]) . "\n";
$handler = static fn () => 'Hello, world';

$memory = fopen('php://memory', 'w+');
$worker = new Worker(new Channel($memory, $memory), fopen('php://stderr', 'w'));
ob_start(static fn (string $b): string => '', 1);

$steps = ['decode' => [], 'handle' => [], 'encode' => []];
for ($round = 0; $round < 5; $round++) {
    $t0 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        $message = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    }
    $t1 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        $response = $worker->handle($message, $handler);
    }
    $t2 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        $out = json_encode($response, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
            | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR) . "\n";
    }
    $t3 = hrtime(true);
    $steps['decode'][] = ($t1 - $t0) / $n / 1000;
    $steps['handle'][] = ($t2 - $t1) / $n / 1000;
    $steps['encode'][] = ($t3 - $t2) / $n / 1000;
}
ob_end_clean();
$median = static function (array $v): float {
    sort($v);
    return $v[intdiv(count($v), 2)];
};
$result = array_map(static fn (array $v): float => round($median($v), 2), $steps);
$result['total'] = round(array_sum($result), 2);
fwrite(fopen('php://stdout', 'w'), 'runtime µs per request (' . PHP_VERSION . ', php-cgi, no pipes): '
    . json_encode($result) . "\n");
