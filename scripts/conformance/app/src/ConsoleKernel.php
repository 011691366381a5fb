<?php

declare(strict_types=1);

namespace Zeno\Conformance;

use Illuminate\Foundation\Console\Kernel;

final class ConsoleKernel extends Kernel
{
    protected $commands = [PhpunitCommand::class];
}
