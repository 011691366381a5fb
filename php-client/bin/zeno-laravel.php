<?php

// The handler the host runs for `zeno serve --laravel APP_DIR`: boots the app in
// ZENO_LARAVEL_APP once, then serves every request through its HTTP kernel.

declare(strict_types=1);

return \Zeno\Laravel\HttpWorker::boot((string) getenv('ZENO_LARAVEL_APP'));
