<?php

// The worker entry point the host starts: `php-cgi -q bin/zeno-worker.php` with the handler
// file in ZENO_HANDLER.

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';

exit(\Zeno\Runtime\Worker::main((string) getenv('ZENO_HANDLER')));
