<?php
// t/php.t: reads the request body through php://input, the way PHP
// applications read JSON and binary uploads, and says what it got.
$body = file_get_contents('php://input');
header('Content-Type: application/json');
echo json_encode([
    'handler'        => 'mod_php',
    'sapi'           => PHP_SAPI,
    'length'         => strlen($body),
    'sha256'         => hash('sha256', $body),
    'CONTENT_LENGTH' => $_SERVER['CONTENT_LENGTH'] ?? null,
]), "\n";
