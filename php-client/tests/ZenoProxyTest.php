<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Laravel\Database\ZenoPdo;
use Zeno\Laravel\Database\ZenoPdoException;
use Zeno\Laravel\Database\ZenoStatement;

/** The pieces of the zeno_proxy driver that need no host. */
final class ZenoProxyTest extends TestCase
{
    public function testNamedParametersBecomePositional(): void
    {
        [$sql, $values] = ZenoStatement::positional(
            "select :a, ':not', \"col:x\", x::text, :b -- :comment\n, :a",
            ['a' => 1, 'b' => 'two'],
        );
        $this->assertSame("select ?, ':not', \"col:x\", x::text, ? -- :comment\n, ?", $sql);
        $this->assertSame([1, 'two', 1], $values);
    }

    public function testPositionalParametersKeepTheirOrder(): void
    {
        $this->assertSame(['select ?, ?', ['x', 'y']], ZenoStatement::positional('select ?, ?', [2 => 'y', 1 => 'x']));
    }

    public function testAnUnboundNameIsAnError(): void
    {
        $this->expectException(\PDOException::class);
        $this->expectExceptionMessage(':missing');
        ZenoStatement::positional('select :missing', ['other' => 1]);
    }

    public function testDatabaseErrorsLookLikePdos(): void
    {
        $pg = ZenoPdoException::fromHost('pgsql', 'duplicate key value violates unique constraint "u"', [
            'kind' => 'db', 'sqlstate' => '23505',
        ]);
        $this->assertSame('23505', $pg->getCode());
        $this->assertSame(['23505', 7, 'ERROR:  duplicate key value violates unique constraint "u"'], $pg->errorInfo);
        $this->assertStringStartsWith('SQLSTATE[23505]: Unique violation: 7 ERROR:  duplicate key', $pg->getMessage());

        $detailed = ZenoPdoException::fromHost('pgsql', 'duplicate key value violates unique constraint "u"', [
            'kind' => 'db', 'sqlstate' => '23505', 'detail' => 'Key (e)=(1) already exists.', 'constraint' => 'u',
        ]);
        $this->assertSame(
            "ERROR:  duplicate key value violates unique constraint \"u\"\nDETAIL:  Key (e)=(1) already exists.",
            $detailed->errorInfo[2],
        );

        $my = ZenoPdoException::fromHost('mysql', "Duplicate entry 'a' for key 'email'", [
            'kind' => 'db', 'sqlstate' => '23000', 'driver_code' => '1062',
        ]);
        // Laravel's MySQL unique-violation check looks for exactly this.
        $this->assertStringContainsString('Integrity constraint violation: 1062 Duplicate entry', $my->getMessage());
        $this->assertSame(['23000', 1062, "Duplicate entry 'a' for key 'email'"], $my->errorInfo);

        $down = ZenoPdoException::fromHost('pgsql', 'database "x": no connection within 3s', ['kind' => 'db_unavailable']);
        $this->assertSame('HY000', $down->getCode());
        $this->assertStringContainsString('zeno db_unavailable', $down->getMessage());
    }

    public function testWithoutAHostEveryCallIsAClearError(): void
    {
        $pdo = new ZenoPdo('default', 'pgsql');
        $this->assertSame('pgsql', $pdo->getAttribute(\PDO::ATTR_DRIVER_NAME));
        $this->assertSame("'it''s'", $pdo->quote("it's"));
        $this->assertSame("'it\\'s \\\\ \\n'", (new ZenoPdo('default', 'mysql'))->quote("it's \\ \n"));
        try {
            $pdo->prepare('select 1')->execute();
            $this->fail('no host, no query');
        } catch (ZenoPdoException $e) {
            $this->assertStringContainsString('not running under the Zeno host', $e->getMessage());
        }
    }

    public function testBinaryTextIsRefusedNotCorrupted(): void
    {
        $this->assertSame(['$binary' => 'AP8Q'], ZenoPdo::binary("\x00\xff\x10"));
        $this->expectException(ZenoPdoException::class);
        $this->expectExceptionMessage('not UTF-8');
        (new ZenoPdo('default', 'mysql'))->prepare("insert into t values ('\xff')")->execute();
    }
}
