<?php

declare(strict_types=1);

// The zeno side of the database bench: `/db` runs one query through the host's pool;
// `/latency` times the same query through the host and through a warm PDO connection held by
// this worker, so the two are compared in one process, one after the other.

$pdo = null;

return function (Zeno\Request $request) use (&$pdo) {
    switch ($request->path()) {
        case '/db':
            $r = \Zeno::call('db_query', ['sql' => 'select count(*) as c from bench_users']);
            if (!$r['success']) {
                throw new RuntimeException((string) $r['error']);
            }
            return 'users: ' . $r['data']['rows'][0]['c'] . "\n";
        case '/latency':
            $n = (int) $request->query('n', '1000');
            $pdo ??= new PDO((string) getenv('BENCH_PDO_DSN'), 'zeno_bench', 'zeno_bench', [
                PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
                PDO::ATTR_EMULATE_PREPARES => false,
            ]);
            $sql = 'select id, name, email from bench_users where id = ?';
            $statement = $pdo->prepare($sql);
            for ($i = 0; $i < 50; $i++) { // warm both paths
                \Zeno::call('db_query', ['sql' => $sql, 'params' => [1 + $i]]);
                $statement->execute([1 + $i]);
                $statement->fetchAll(PDO::FETCH_OBJ);
            }
            $t0 = hrtime(true);
            for ($i = 0; $i < $n; $i++) {
                $r = \Zeno::call('db_query', ['sql' => $sql, 'params' => [1 + $i % 1000]]);
            }
            $host = (hrtime(true) - $t0) / $n / 1000;
            $t0 = hrtime(true);
            for ($i = 0; $i < $n; $i++) {
                // Laravel prepares each query anew (no statement reuse across calls).
                $s = $pdo->prepare($sql);
                $s->execute([1 + $i % 1000]);
                $s->fetchAll(PDO::FETCH_OBJ);
            }
            $direct = (hrtime(true) - $t0) / $n / 1000;
            return ['queries' => $n, 'host_us' => round($host, 1), 'pdo_us' => round($direct, 1), 'ratio' => round($host / $direct, 2)];
    }
    return new Zeno\Response("Not Found\n", 404);
};
