<?php

declare(strict_types=1);

// The PHP-FPM side of the database bench: one query per request on a new PDO connection
// (SCRAM authentication every time), or with ?persistent=1 on a persistent one.

$persistent = ($_GET['persistent'] ?? '') === '1';
$pdo = new PDO('pgsql:host=127.0.0.1;port=5432;dbname=zeno_bench', 'zeno_bench', 'zeno_bench', [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_EMULATE_PREPARES => false,
    PDO::ATTR_PERSISTENT => $persistent,
]);
$count = $pdo->query('select count(*) as c from bench_users')->fetch(PDO::FETCH_OBJ)->c;
echo 'users: ' . $count . "\n";
