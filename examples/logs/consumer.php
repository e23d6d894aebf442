<?php
// A log listener in PHP with php-amqplib, as in seed 002: a named durable queue
// bound to the `logs` topic exchange with a pattern.
//
//   php consumer.php error-logs '#.error' [IDLE_SECONDS]
//
// Prints `KEY: TEXT` per line; stops after IDLE_SECONDS without a message.
require_once getenv('PHP_AMQPLIB_AUTOLOAD') ?: '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPTimeoutException;

[$_, $queue, $pattern] = $argv;
$idle = isset($argv[3]) ? (float)$argv[3] : 0;

$url = parse_url(getenv('AMQP_URL') ?: 'amqp://guest:guest@localhost:5672/%2F');
$vhost = isset($url['path']) && $url['path'] !== '/' ? urldecode(substr($url['path'], 1)) : '/';
$conn = new AMQPStreamConnection($url['host'], $url['port'] ?? 5672,
    urldecode($url['user'] ?? 'guest'), urldecode($url['pass'] ?? 'guest'), $vhost);
$channel = $conn->channel();

$channel->exchange_declare('logs', 'topic', false, true, false);
$channel->queue_declare($queue, false, true, false, false);
$channel->queue_bind($queue, 'logs', $pattern);
echo "listening on $queue ($pattern)\n";

$consumer = function ($msg) {
    echo $msg->getRoutingKey() . ': ' . $msg->getBody() . "\n";
    $msg->ack();
};
$channel->basic_consume($queue, '', false, false, false, false, $consumer);

try {
    while ($channel->is_consuming()) {
        $channel->wait(null, false, $idle);
    }
} catch (AMQPTimeoutException $e) {
    // idle: done
}
$channel->close();
$conn->close();
