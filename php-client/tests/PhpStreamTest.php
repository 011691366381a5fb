<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Runtime\PhpStream;

/**
 * php://input yields the request body; every other php:// stream still works.
 *
 * @runTestsInSeparateProcesses
 */
final class PhpStreamTest extends TestCase
{
    public function testInputIsTheBodyAndRereadable(): void
    {
        PhpStream::install();
        PhpStream::setInput('{"a":1}');
        $this->assertSame('{"a":1}', file_get_contents('php://input'));
        $this->assertSame('{"a":1}', file_get_contents('php://input'), 'readable twice, as in PHP >= 5.6');
        $h = fopen('php://input', 'r');
        $this->assertSame('{"a"', fread($h, 4));
        fseek($h, 0);
        $this->assertSame('{', fread($h, 1));
        fclose($h);
        PhpStream::setInput('');
        $this->assertSame('', file_get_contents('php://input'));
    }

    public function testOtherPhpStreamsStillWork(): void
    {
        PhpStream::install();
        $temp = fopen('php://temp', 'w+');
        fwrite($temp, 'hello');
        rewind($temp);
        $this->assertSame('hello', stream_get_contents($temp));
        ftruncate($temp, 2);
        rewind($temp);
        $this->assertSame('he', stream_get_contents($temp));
        $memory = fopen('php://memory', 'w+');
        fwrite($memory, 'xyz');
        fseek($memory, 1);
        $this->assertSame('yz', fread($memory, 10));
        ob_start();
        file_put_contents('php://output', 'to output');
        $this->assertSame('to output', ob_get_clean());
    }
}
