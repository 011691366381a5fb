<?php

declare(strict_types=1);

// `php native.php SPEC.json`: the same run as conformance:phpunit, in a plain php-cli process.
require __DIR__ . '/bootstrap/autoload.php';

$status = Zeno\Conformance\Runner::run((string) ($argv[1] ?? ''));
echo Zeno\Conformance\Runner::summary(), "\n";
exit($status);
