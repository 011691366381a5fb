<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Runtime\Deferred;
use Zeno\Runtime\Protocol;

/** The messages the worker sends, as docs/protocol.md defines them, and deferred work. */
final class ProtocolTest extends TestCase
{
    public function testResponseCarriesUtf8AsBodyAndBytesAsBase64(): void
    {
        $text = Protocol::response('r-1', 201, ['x-a' => ['1']], 'héllo');
        self::assertSame(
            ['type' => 'response', 'id' => 'r-1', 'status' => 201, 'headers' => ['x-a' => ['1']], 'body' => 'héllo'],
            $text,
        );
        $binary = Protocol::response('r-2', 200, [], "\xff\x00");
        self::assertSame(base64_encode("\xff\x00"), $binary['body_b64']);
        self::assertArrayNotHasKey('body', $binary);
        self::assertArrayNotHasKey('body', Protocol::response('r-3', 204, [], ''));
        self::assertSame("\xff\x00", Protocol::requestBody(['body_b64' => base64_encode("\xff\x00")]));
    }

    public function testFlagsAppearOnlyWhenSet(): void
    {
        $plain = Protocol::response('r-1', 200, [], 'x');
        self::assertArrayNotHasKey('terminating', $plain);
        self::assertArrayNotHasKey('exiting', $plain);
        $flagged = Protocol::response('r-1', 200, [], 'x', terminating: true, exiting: true);
        self::assertTrue($flagged['terminating']);
        self::assertTrue($flagged['exiting']);
        self::assertSame(['type' => 'done', 'id' => 'r-1'], Protocol::done('r-1'));
        self::assertSame(['type' => 'done', 'id' => 'r-1', 'exiting' => true], Protocol::done('r-1', true));
        self::assertSame(500, Protocol::error('r-9')['status']);
    }

    public function testEmptyObjectsStayObjectsOnTheWire(): void
    {
        $call = Protocol::hostCall('c-1', 'r-1', 'db_query', []);
        self::assertSame('{"type":"host_call","id":"c-1","request":"r-1","function":"db_query","parameters":{}}', json_encode($call));
        $log = Protocol::log('info', 'hi', [], null);
        self::assertSame('{"type":"log","level":"info","message":"hi","context":{}}', json_encode($log));
        self::assertSame('r-1', Protocol::log('info', 'hi', [], 'r-1')['request']);
    }

    public function testReadyAnnouncesTheVersionTheHostExpects(): void
    {
        $ready = Protocol::ready('handler');
        self::assertSame(Protocol::VERSION, $ready['protocol']);
        self::assertSame(getmypid(), $ready['pid']);
        $host = getenv('ZENO_PROTOCOL');
        if ($host !== false) {
            self::assertSame((int) $host, Protocol::VERSION);
        }
    }

    public function testDeferredWorkRunsInOrderPastFailures(): void
    {
        $deferred = new Deferred();
        $ran = [];
        $errors = [];
        $deferred->add(function () use (&$ran, $deferred): void {
            $ran[] = 'a';
            $deferred->add(function () use (&$ran): void {
                $ran[] = 'added while running';
            });
        });
        $deferred->add(function (): void {
            throw new \RuntimeException('b failed');
        });
        $deferred->add(function () use (&$ran): void {
            $ran[] = 'c';
        });
        self::assertFalse($deferred->isEmpty());
        $deferred->run(function (\Throwable $e) use (&$errors): void {
            $errors[] = $e->getMessage();
        });
        self::assertSame(['a', 'c', 'added while running'], $ran);
        self::assertSame(['b failed'], $errors);
        self::assertTrue($deferred->isEmpty());
    }
}
