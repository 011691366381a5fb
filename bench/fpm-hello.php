<?php echo "Hello, world";
