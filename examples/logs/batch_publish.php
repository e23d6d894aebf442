<?php
// Batch processing (seed 002): the web app publishes one job per video to the
// `video-desc-ex` direct exchange; any number of workers (batch_worker.py)
// share the `video-desc-queue` and turn each job into an XML file.
//
//   php batch_publish.php 40
require_once getenv('PHP_AMQPLIB_AUTOLOAD') ?: '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;

$count = (int)($argv[1] ?? 10);
$url = parse_url(getenv('AMQP_URL') ?: 'amqp://guest:guest@localhost:5672/%2F');
$vhost = isset($url['path']) && $url['path'] !== '/' ? urldecode(substr($url['path'], 1)) : '/';
$conn = new AMQPStreamConnection($url['host'], $url['port'] ?? 5672,
    urldecode($url['user'] ?? 'guest'), urldecode($url['pass'] ?? 'guest'), $vhost);
$channel = $conn->channel();

$channel->exchange_declare('video-desc-ex', 'direct', false, true, false);
$channel->queue_declare('video-desc-queue', false, true, false, false);
$channel->queue_bind('video-desc-queue', 'video-desc-ex');

for ($i = 1; $i <= $count; $i++) {
    $video_info = json_encode(['id' => $i, 'title' => "Video $i", 'seconds' => 60 + $i]);
    $msg = new AMQPMessage($video_info,
        ['content_type' => 'application/json', 'delivery_mode' => 2]);
    $channel->basic_publish($msg, 'video-desc-ex');
}
echo "published $count jobs\n";
$channel->close();
$conn->close();
