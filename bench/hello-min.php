<?php

return fn () => "Hello, world";
