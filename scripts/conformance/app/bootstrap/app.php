<?php

// The outer app that `zeno artisan` boots: its only job is the conformance:phpunit command,
// which runs PHPUnit in this worker, so every test's zeno_proxy queries go to this host.
$app = new Illuminate\Foundation\Application(dirname(__DIR__));

$app->singleton(Illuminate\Contracts\Console\Kernel::class, Zeno\Conformance\ConsoleKernel::class);
$app->singleton(Illuminate\Contracts\Http\Kernel::class, Illuminate\Foundation\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, Illuminate\Foundation\Exceptions\Handler::class);

return $app;
