<?php

declare(strict_types=1);

namespace Zeno\Tests;

use PHPUnit\Framework\TestCase;
use Zeno\Db\Rows;

/** db_query results become the rows PDO would give on this PHP. */
final class RowsTest extends TestCase
{
    /** The expected strings are PostgreSQL 15's own output for the same double. */
    public function testFloatsPrintAsPostgresDoes(): void
    {
        $cases = [
            '2' => 2.0, '1e+25' => 1e25, '1e-07' => 1e-7, '0.30000000000000004' => 0.1 + 0.2,
            '1.2345678901234568e+17' => 123456789012345680.0, '1e+15' => 1e15, '0.0001' => 0.0001,
            '0.00012' => 0.00012, '-3.5' => -3.5, '100' => 100.0, '1.5e+300' => 1.5e300,
            '5e-324' => 5e-324, '0' => 0.0, '123.456' => 123.456, '-0.125' => -0.125,
            '999999999999999' => 999999999999999.0, 'NaN' => NAN, 'Infinity' => INF,
        ];
        foreach ($cases as $expected => $value) {
            $this->assertSame((string) $expected, Rows::postgresFloat($value));
        }
    }

    public function testFloatTextDoesNotDependOnSerializePrecision(): void
    {
        $old = ini_set('serialize_precision', '17');
        try {
            $this->assertSame('0.1', Rows::postgresFloat(0.1));
            $this->assertSame('17', ini_get('serialize_precision'));
        } finally {
            ini_set('serialize_precision', (string) $old);
        }
    }

    public function testBinaryColumnsAreDecoded(): void
    {
        $data = [
            'columns' => [['name' => 'id', 'type' => 'INT'], ['name' => 'b', 'type' => 'BLOB', 'binary' => true]],
            'rows' => [['id' => 1, 'b' => base64_encode("\x00\xff")], ['id' => 2, 'b' => null]],
        ];
        $this->assertSame([['id' => 1, 'b' => "\x00\xff"], ['id' => 2, 'b' => null]], Rows::asPdo($data, 'mysql'));
        $pg = Rows::asPdo($data, 'pgsql');
        $this->assertIsResource($pg[0]['b']);
        $this->assertSame("\x00\xff", stream_get_contents($pg[0]['b']));
        $this->assertNull($pg[1]['b']);
    }

    public function testPostgresFloatsFollowThisPhpsPdo(): void
    {
        $data = [
            'columns' => [['name' => 'f', 'type' => 'FLOAT8'], ['name' => 'n', 'type' => 'NUMERIC']],
            'rows' => [['f' => 1.5, 'n' => '1.50'], ['f' => null, 'n' => null]],
        ];
        $expected = PHP_VERSION_ID < 80400 ? '1.5' : 1.5;
        $this->assertSame([['f' => $expected, 'n' => '1.50'], ['f' => null, 'n' => null]], Rows::asPdo($data, 'pgsql'));
        $this->assertSame($data['rows'], Rows::asPdo($data, 'mysql'));
    }

    public function testInfinitiesBecomeFloatsWherePdoGivesFloats(): void
    {
        $data = [
            'columns' => [['name' => 'f', 'type' => 'DOUBLE'], ['name' => 's', 'type' => 'TEXT']],
            'rows' => [['f' => 'Infinity', 's' => 'Infinity'], ['f' => '-Infinity', 's' => 'NaN'], ['f' => 'NaN', 's' => null]],
        ];
        $rows = Rows::asPdo($data, 'mysql');
        $this->assertSame(INF, $rows[0]['f']);
        $this->assertSame(-INF, $rows[1]['f']);
        $this->assertNan($rows[2]['f']);
        $this->assertSame('Infinity', $rows[0]['s'], 'only float columns');
        $pg = Rows::asPdo(['columns' => [['name' => 'f', 'type' => 'FLOAT8']], 'rows' => [['f' => 'Infinity']]], 'pgsql');
        $this->assertSame(PHP_VERSION_ID < 80400 ? 'Infinity' : INF, $pg[0]['f']);
    }
}
