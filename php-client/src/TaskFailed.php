<?php

declare(strict_types=1);

namespace Zeno;

/**
 * A task could not give its result: its worker died, the host lost it, or it threw an
 * exception whose class cannot be rebuilt here (the message names that class).
 */
class TaskFailed extends \RuntimeException
{
}
