import type { ChannelOptions } from '@grpc/grpc-js';

/** The largest gRPC message either side sends or accepts: 4 MiB, gRPC's usual default. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The largest chunk a version may be cut into: one chunk travels in one message, which also
 * carries its index and protobuf framing, so 64 KiB of the limit are left for those.
 */
export const MAX_CHUNK_BYTES = MAX_MESSAGE_BYTES - 64 * 1024;

/**
 * Size of the chunks a knowledge version is cut into. 1 MiB sits in the range that moved
 * bytes fastest over grpc-js on loopback (256 KiB to 1 MiB) and far below the limit.
 */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * Channel options shared by hub and participant. The limits are stated explicitly on both
 * sides so that a change of library default cannot silently change them. The 16 MiB flow
 * control window is the grpc-js setting that lifts streaming throughput from ~70 MB/s to
 * ~300 MB/s on loopback (its default HTTP/2 window is 64 KiB).
 */
export const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // A participant's channel tries to reach a hub that went away every 0.5 s at first and
  // at least every 5 s later (grpc-js would wait up to 120 s), so that it is back soon
  // after the hub restarts; its calls fail fast meanwhile and the node's own backoff paces
  // the retries.
  'grpc.initial_reconnect_backoff_ms': 500,
  'grpc.max_reconnect_backoff_ms': 5_000,
};
