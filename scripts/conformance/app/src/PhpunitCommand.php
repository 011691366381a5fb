<?php

declare(strict_types=1);

namespace Zeno\Conformance;

use Illuminate\Console\Command;

/** `conformance:phpunit SPEC.json`: runs PHPUnit in this process as the spec says. */
final class PhpunitCommand extends Command
{
    protected $signature = 'conformance:phpunit {spec : a JSON file written by scripts/conformance.sh}';
    protected $description = 'Run laravel/framework tests in this worker';

    public function handle(): int
    {
        $status = Runner::run((string) $this->argument('spec'));
        $this->line(Runner::summary());
        return $status;
    }
}
