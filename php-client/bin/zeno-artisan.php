<?php

// The handler the host runs for `zeno artisan APP_DIR -- ARGS`: boots the app in
// ZENO_LARAVEL_APP and runs one artisan command per task, its database work on the host's pool.

declare(strict_types=1);

return \Zeno\Laravel\ArtisanWorker::boot((string) getenv('ZENO_LARAVEL_APP'));
