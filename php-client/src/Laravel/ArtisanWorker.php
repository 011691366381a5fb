<?php

declare(strict_types=1);

namespace Zeno\Laravel;

use Illuminate\Contracts\Console\Kernel as ConsoleKernel;
use Illuminate\Foundation\Application;
use Symfony\Component\Console\Input\ArgvInput;
use Symfony\Component\Console\Output\BufferedOutput;
use Symfony\Component\Console\Output\OutputInterface;
use Zeno\Request;
use Zeno\Response;

/**
 * Runs artisan commands inside a worker connected to the host, so migrations and seeders
 * use the host's pool and the credentials never leave it. A task is
 * `{"argv": ["migrate", "--force"]}`; the response body is the command's output and the
 * `x-zeno-exit-code` header its exit code.
 */
final class ArtisanWorker
{
    private function __construct(private Application $app)
    {
    }

    public static function boot(string $appDir): self
    {
        $app = AppLoader::load($appDir);
        chdir($app->basePath());
        // Task workers of `zeno artisan` boot here too; a task gets the console kernel's
        // bootstrapped app.
        $app->make(ConsoleKernel::class)->bootstrap();
        TaskInvoker::install($app, StateReset::capture($app));
        return new self($app);
    }

    public function __invoke(Request $request): Response
    {
        $task = $request->task();
        $argv = is_array($task) && is_array($task['argv'] ?? null) ? array_map('strval', $task['argv']) : null;
        if ($argv === null) {
            return new Response("zeno artisan: the task must be {\"argv\": [...]}\n", 400);
        }
        $kernel = $this->app->make(ConsoleKernel::class);
        $output = new BufferedOutput(OutputInterface::VERBOSITY_NORMAL, (bool) ($task['decorated'] ?? false));
        $input = new ArgvInput(['artisan', ...$argv]);
        // Commands that would ask a question get their default answer, as with --no-interaction.
        $input->setInteractive(false);
        $status = $kernel->handle($input, $output);
        $kernel->terminate($input, $status);
        return new Response($output->fetch(), 200, ['x-zeno-exit-code' => (string) $status]);
    }
}
