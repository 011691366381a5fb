<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Request;
use Zeno\Response;
use Zeno\Runtime\Channel;
use Zeno\Runtime\Worker;
use Zeno\Zeno;

/**
 * Drives Worker::handle() with an in-memory channel: what a handler returns, echoes and
 * calls becomes the right protocol messages.
 */
final class WorkerTest extends TestCase
{
    /** @var resource */
    private $in;
    /** @var resource */
    private $out;
    private Worker $worker;

    protected function setUp(): void
    {
        $this->in = fopen('php://memory', 'w+');
        $this->out = fopen('php://memory', 'w+');
        $this->worker = new Worker(new Channel($this->in, $this->out), fopen('php://memory', 'w+'));
        Zeno::bind($this->worker);
    }

    protected function tearDown(): void
    {
        Zeno::bind(null);
    }

    private function request(string $path = '/', array $http = [], array $scope = []): array
    {
        return [
            'type' => 'request',
            'id' => 'r-9',
            'kind' => 'http',
            'http' => $http + ['method' => 'GET', 'uri' => $path, 'path' => $path, 'query' => '', 'headers' => []],
            '_zeno_scope' => $scope,
        ];
    }

    /** @return list<array<string, mixed>> */
    private function sent(): array
    {
        rewind($this->out);
        $lines = array_filter(explode("\n", (string) stream_get_contents($this->out)));
        return array_map(static fn (string $l) => json_decode($l, true, 512, JSON_THROW_ON_ERROR), array_values($lines));
    }

    public function testStringResultWithEchoAndDefaultContentType(): void
    {
        $response = $this->worker->handle($this->request(), function (Request $r): string {
            echo 'echo-';
            return 'returned';
        });
        $this->assertSame('r-9', $response['id']);
        $this->assertSame(200, $response['status']);
        $this->assertSame('echo-returned', $response['body']);
        $this->assertSame(['text/html; charset=UTF-8'], $response['headers']['content-type']);
    }

    public function testDeferredWorkRunsAfterTheResponseThenDone(): void
    {
        fwrite($this->in, json_encode($this->request()) . "\n");
        rewind($this->in);
        $order = [];
        $this->worker->run(function () use (&$order): string {
            Zeno::defer(function () use (&$order): void {
                $order[] = 'deferred';
                Zeno::log('info', 'after the response');
            });
            Zeno::defer(function (): void {
                throw new \RuntimeException('deferred failure');
            });
            Zeno::defer(function () use (&$order): void {
                $order[] = 'still runs';
            });
            $order[] = 'handler';
            return 'body';
        });
        $types = array_map(static fn (array $m) => $m['type'], $this->sent());
        $this->assertSame(['ready', 'response', 'log', 'log', 'done'], $types);
        [, $response, $log, $error, $done] = $this->sent();
        $this->assertTrue($response['terminating']);
        $this->assertSame('body', $response['body']);
        $this->assertSame('r-9', $log['request']);
        $this->assertStringContainsString('deferred failure', $error['message']);
        $this->assertSame(['type' => 'done', 'id' => 'r-9'], $done);
        $this->assertSame(['handler', 'deferred', 'still runs'], $order);
    }

    public function testWithoutDeferredWorkThereIsNoDone(): void
    {
        fwrite($this->in, json_encode($this->request()) . "\n");
        rewind($this->in);
        $this->worker->run(fn () => 'plain');
        $sent = $this->sent();
        $this->assertSame(['ready', 'response'], array_map(static fn (array $m) => $m['type'], $sent));
        $this->assertArrayNotHasKey('terminating', $sent[1]);
    }

    public function testArrayResultIsJson(): void
    {
        $response = $this->worker->handle($this->request(), fn () => ['a' => 1, 'b' => [true, null]]);
        $this->assertSame('{"a":1,"b":[true,null]}', $response['body']);
        $this->assertSame(['application/json'], $response['headers']['content-type']);
    }

    public function testResponseObjectSetsStatusAndHeaders(): void
    {
        $response = $this->worker->handle(
            $this->request(),
            fn () => (new Response('made', 201, ['X-One' => '1']))->addHeader('Set-Cookie', 'a=1')->addHeader('Set-Cookie', 'b=2')
        );
        $this->assertSame(201, $response['status']);
        $this->assertSame('made', $response['body']);
        $this->assertSame(['1'], $response['headers']['x-one']);
        $this->assertSame(['a=1', 'b=2'], $response['headers']['set-cookie']);
    }

    public function testNullResultWithOnlyEcho(): void
    {
        $response = $this->worker->handle($this->request(), function (): void {
            echo 'only echo';
        });
        $this->assertSame('only echo', $response['body']);
    }

    public function testBinaryBodyTravelsAsBase64BothWays(): void
    {
        $bytes = "\x00\xff\xfe binary";
        $response = $this->worker->handle(
            $this->request('/', ['body_b64' => base64_encode($bytes), 'method' => 'POST']),
            fn (Request $r) => $r->body()
        );
        $this->assertArrayNotHasKey('body', $response);
        $this->assertSame($bytes, base64_decode($response['body_b64'], true));
    }

    public function testExceptionGives500AndALogRecord(): void
    {
        $response = $this->worker->handle($this->request(), function (): never {
            echo 'partial output is discarded';
            throw new \LogicException('nope');
        });
        $this->assertSame(500, $response['status']);
        $this->assertSame("Internal Server Error\n", $response['body']);
        $log = $this->sent()[0];
        $this->assertSame('log', $log['type']);
        $this->assertSame('error', $log['level']);
        $this->assertStringContainsString('LogicException: nope', $log['message']);
        $this->assertSame('r-9', $log['request']);
    }

    public function testUnsupportedReturnTypeIsA500(): void
    {
        $response = $this->worker->handle($this->request(), fn () => new \stdClass());
        $this->assertSame(500, $response['status']);
    }

    public function testScopeIsVisibleDuringTheRequestAndClearedAfter(): void
    {
        $seen = null;
        $this->worker->handle($this->request('/', [], ['user_id' => 42]), function (Request $r) use (&$seen) {
            $seen = [Zeno::scope('user_id'), $GLOBALS['_ZENO']['user_id'], $r->scope('user_id')];
            return '';
        });
        $this->assertSame([42, 42, 42], $seen);
        $this->assertSame([], Zeno::scope());
        $this->assertSame([], $_GET);
    }

    public function testHostCallWritesTheCallAndReturnsTheResult(): void
    {
        fwrite($this->in, json_encode(['type' => 'host_result', 'id' => 'c-1', 'success' => true, 'data' => ['rows' => [1]]]) . "\n");
        rewind($this->in);
        $result = null;
        $this->worker->handle($this->request(), function () use (&$result) {
            $result = \Zeno::call('db_query', ['sql' => 'select 1']);
            return '';
        });
        $this->assertSame(['success' => true, 'data' => ['rows' => [1]], 'error' => null, 'error_info' => null], $result);
        $call = $this->sent()[0];
        $this->assertSame(['type' => 'host_call', 'id' => 'c-1', 'request' => 'r-9', 'function' => 'db_query', 'parameters' => ['sql' => 'select 1']], $call);
    }

    public function testHostCallFailureCarriesErrorInfo(): void
    {
        fwrite($this->in, json_encode(['type' => 'host_result', 'id' => 'c-1', 'success' => false, 'error' => 'bad', 'error_info' => ['kind' => 'db', 'sqlstate' => '23505']]) . "\n");
        rewind($this->in);
        $result = $this->worker->hostCall('db_query', []);
        $this->assertFalse($result['success']);
        $this->assertSame('bad', $result['error']);
        $this->assertSame('23505', $result['error_info']['sqlstate']);
    }

    public function testRequestHelpers(): void
    {
        $captured = null;
        $this->worker->handle($this->request('/a%20b', [
            'method' => 'post',
            'query' => 'q=1',
            'headers' => ['x-token' => ['t1', 't2'], 'cookie' => ['k=v']],
            'body' => '{"j":5}',
        ]), function (Request $r) use (&$captured) {
            $captured = [$r->method(), $r->path(), $r->query('q'), $r->header('X-Token'), $r->json(), $r->input('j'), $r->input('q'), $r->cookie('k'), $r->kind()];
            return '';
        });
        $this->assertSame(['POST', '/a b', '1', 't1', ['j' => 5], 5, '1', 'v', 'http'], $captured);
    }

    public function testTaskRequestsCarryTheirPayload(): void
    {
        $message = ['type' => 'request', 'id' => 't-1', 'kind' => 'task', 'task' => ['n' => 3], '_zeno_scope' => []];
        $response = $this->worker->handle($message, fn (Request $r) => ['double' => $r->task()['n'] * 2]);
        $this->assertSame('{"double":6}', $response['body']);
    }
}
