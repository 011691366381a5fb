<?php

declare(strict_types=1);

namespace Zeno;

/** A task ran past its timeout; the host stopped its worker (and only that worker). */
class TaskTimedOut extends TaskFailed
{
}
