<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Runtime\Superglobals;

final class SuperglobalsTest extends TestCase
{
    private function http(array $overrides = []): array
    {
        return $overrides + [
            'method' => 'GET',
            'uri' => '/p?a=1',
            'path' => '/p',
            'query' => 'a=1',
            'protocol' => 'HTTP/1.1',
            'scheme' => 'http',
            'remote_addr' => '10.0.0.7:51000',
            'server_addr' => '127.0.0.1:8080',
            'headers' => ['host' => ['example.test:8080'], 'x-multi' => ['a', 'b']],
        ];
    }

    public function testServerIsFilledLikeFpm(): void
    {
        $g = Superglobals::build($this->http(), ['KEEP' => 'me'], '');
        $s = $g['server'];
        $this->assertSame('me', $s['KEEP']);
        $this->assertSame('GET', $s['REQUEST_METHOD']);
        $this->assertSame('/p?a=1', $s['REQUEST_URI']);
        $this->assertSame('a=1', $s['QUERY_STRING']);
        $this->assertSame('10.0.0.7', $s['REMOTE_ADDR']);
        $this->assertSame('51000', $s['REMOTE_PORT']);
        $this->assertSame('127.0.0.1', $s['SERVER_ADDR']);
        $this->assertSame('8080', $s['SERVER_PORT']);
        $this->assertSame('example.test', $s['SERVER_NAME']);
        $this->assertSame('example.test:8080', $s['HTTP_HOST']);
        $this->assertSame('a, b', $s['HTTP_X_MULTI']);
        $this->assertArrayNotHasKey('HTTPS', $s);
        $this->assertArrayNotHasKey('CONTENT_LENGTH', $s);
        $this->assertIsFloat($s['REQUEST_TIME_FLOAT']);
        $this->assertSame(['a' => '1'], $g['get']);
    }

    public function testHttpsAndIpv6(): void
    {
        $g = Superglobals::build($this->http([
            'scheme' => 'https',
            'remote_addr' => '[::1]:4000',
            'headers' => ['host' => ['[::1]:8443']],
        ]), [], '');
        $this->assertSame('on', $g['server']['HTTPS']);
        $this->assertSame('::1', $g['server']['REMOTE_ADDR']);
        $this->assertSame('::1', $g['server']['SERVER_NAME']);
    }

    public function testUrlencodedPostOnlyForPost(): void
    {
        $headers = ['content-type' => ['application/x-www-form-urlencoded; charset=UTF-8']];
        $g = Superglobals::build($this->http(['method' => 'POST', 'headers' => $headers]), [], 'x=1&y[]=2&a=post');
        $this->assertSame(['x' => '1', 'y' => ['2'], 'a' => 'post'], $g['post']);
        $this->assertSame('post', $g['request']['a']);
        $this->assertSame('16', $g['server']['CONTENT_LENGTH']);
        $this->assertSame('application/x-www-form-urlencoded; charset=UTF-8', $g['server']['CONTENT_TYPE']);
        $this->assertArrayNotHasKey('HTTP_CONTENT_TYPE', $g['server']);

        $g = Superglobals::build($this->http(['method' => 'PUT', 'headers' => $headers]), [], 'x=1');
        $this->assertSame([], $g['post'], 'PHP fills $_POST for POST only');
    }

    public function testMultipartFieldsAndNestedFiles(): void
    {
        $g = Superglobals::build($this->http([
            'method' => 'POST',
            'headers' => ['content-type' => ['multipart/form-data; boundary=x']],
            'fields' => [
                ['name' => 'title', 'value' => 'a&b=c'],
                ['name' => 'tags[]', 'value' => 'one'],
                ['name' => 'tags[]', 'value' => 'two'],
                ['name' => 'user[name]', 'value' => 'Ada'],
            ],
            'uploads' => [
                ['field' => 'avatar', 'name' => 'a.png', 'type' => 'image/png', 'size' => 3, 'tmp_name' => '/tmp/1'],
                ['field' => 'docs[]', 'name' => 'd1.txt', 'type' => 'text/plain', 'size' => 1, 'tmp_name' => '/tmp/2'],
                ['field' => 'docs[]', 'name' => 'd2.txt', 'type' => 'text/plain', 'size' => 2, 'tmp_name' => '/tmp/3'],
                ['field' => 'g[x][y]', 'name' => 'deep.bin', 'type' => 'application/octet-stream', 'size' => 4, 'tmp_name' => '/tmp/4'],
            ],
        ]), [], '');
        $this->assertSame(['title' => 'a&b=c', 'tags' => ['one', 'two'], 'user' => ['name' => 'Ada']], $g['post']);
        $this->assertSame([
            'name' => 'a.png', 'full_path' => 'a.png', 'type' => 'image/png',
            'tmp_name' => '/tmp/1', 'error' => 0, 'size' => 3,
        ], $g['files']['avatar']);
        $this->assertSame(['d1.txt', 'd2.txt'], $g['files']['docs']['name']);
        $this->assertSame(['/tmp/2', '/tmp/3'], $g['files']['docs']['tmp_name']);
        $this->assertSame([1, 2], $g['files']['docs']['size']);
        $this->assertSame('/tmp/4', $g['files']['g']['tmp_name']['x']['y']);
        $this->assertSame(0, $g['files']['g']['error']['x']['y']);
    }

    public function testCookiesFirstWinsAndValuesAreDecoded(): void
    {
        $this->assertSame(
            ['a' => 'x y', 'b' => '', 'c_d' => '1'],
            Superglobals::cookies('a=x%20y; b=; a=second; c.d=1; ;')
        );
    }
}
