//! One connection's way through the proxy: data integrity, half-close, failures, idle timeout.

mod support;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

fn pattern_byte(i: u64) -> u8 {
    // Not periodic at any buffer size the proxy uses, so a dropped, repeated or reordered
    // chunk shows up.
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[test]
fn one_byte_arrives_intact_both_ways() {
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let mut client = connect(address);
    assert_eq!(round_trip(&mut client, b"x"), b"x");
    drop(client);
    assert!(eventually(|| {
        let totals = plane.stats().totals;
        totals.bytes_upstream == 1 && totals.bytes_downstream == 1 && totals.connections_active == 0
    }));
}

#[test]
fn sixty_four_mebibytes_arrive_intact_and_are_counted() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let client = connect(address);
    let mut writer = client.try_clone().expect("clone client");
    let sender = std::thread::spawn(move || {
        let mut chunk = vec![0u8; 61_440];
        let mut offset = 0u64;
        while offset < SIZE {
            let len = chunk.len().min((SIZE - offset) as usize);
            for (j, byte) in chunk[..len].iter_mut().enumerate() {
                *byte = pattern_byte(offset + j as u64);
            }
            writer.write_all(&chunk[..len]).expect("client sends");
            offset += len as u64;
        }
        half_close(&writer);
    });
    let mut reader = client;
    let mut received = 0u64;
    let mut buffer = vec![0u8; 100_000];
    loop {
        let n = reader.read(&mut buffer).expect("client receives");
        if n == 0 {
            break;
        }
        for (j, byte) in buffer[..n].iter().enumerate() {
            let at = received + j as u64;
            assert_eq!(*byte, pattern_byte(at), "byte {at} differs");
        }
        received += n as u64;
    }
    sender.join().expect("sender thread");
    assert_eq!(received, SIZE);
    assert!(eventually(|| {
        let backend = plane.stats();
        let backend = cluster_stats(&backend, "backend");
        backend.bytes_upstream == SIZE && backend.bytes_downstream == SIZE
    }));
}

#[test]
fn client_half_close_still_receives_the_servers_remaining_data() {
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.reply_after_eof(), 1)], 0);
    let mut client = connect(address);
    let message: Vec<u8> = (0..200_000u64).map(pattern_byte).collect();
    client.write_all(&message).expect("client sends");
    half_close(&client);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).expect("client reads to EOF");
    assert_eq!(reply.len(), message.len());
    assert!(reply == message, "reply differs from what was sent");
}

#[test]
fn server_half_close_still_lets_the_client_send() {
    let upstreams = Upstreams::new();
    let (received_tx, received) = mpsc::channel();
    let plane = start();
    let address = apply_single_route(
        &plane,
        &[(upstreams.greet_then_listen(b"hello", received_tx), 1)],
        0,
    );
    let mut client = connect(address);
    let mut greeting = Vec::new();
    client
        .read_to_end(&mut greeting)
        .expect("client reads to the server's EOF");
    assert_eq!(greeting, b"hello");
    client
        .write_all(b"still here")
        .expect("client sends after the server's EOF");
    half_close(&client);
    let data = received
        .recv_timeout(IO_TIMEOUT)
        .expect("server reports what it read");
    assert_eq!(data, b"still here");
}

#[test]
fn connect_failure_is_counted_and_closes_the_client() {
    let plane = start();
    let address = apply_single_route(&plane, &[(closed_endpoint(), 1)], 0);
    let mut client = connect(address);
    assert_closed_by_proxy(&mut client);
    assert!(eventually(|| {
        let stats = plane.stats();
        stats.totals.connect_failures == 1
            && cluster_stats(&stats, "backend").connect_failures == 1
            && cluster_stats(&stats, "backend").connections_opened == 0
            && stats.totals.connections_active == 0
    }));
}

#[test]
fn a_cluster_without_endpoints_is_counted_as_no_healthy_upstream() {
    let plane = start();
    let address = apply_single_route(&plane, &[], 0);
    let mut client = connect(address);
    assert_closed_by_proxy(&mut client);
    assert!(eventually(|| {
        let stats = plane.stats();
        stats.totals.no_healthy_upstream == 1
            && cluster_stats(&stats, "backend").no_healthy_upstream == 1
            && stats.totals.connect_failures == 0
    }));
}

#[test]
fn idle_timeout_closes_an_idle_connection_and_is_counted() {
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 300);

    // Traffic more often than the timeout keeps a connection open past it.
    let mut busy = connect(address);
    for _ in 0..10 {
        assert_eq!(round_trip(&mut busy, b"ping"), b"ping");
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(plane.stats().totals.idle_timeouts, 0);

    let mut idle = connect(address);
    assert_eq!(round_trip(&mut idle, b"ping"), b"ping");
    assert_closed_by_proxy(&mut idle);
    assert!(eventually(|| plane.stats().totals.idle_timeouts >= 1));
}

#[test]
fn byte_counters_move_while_the_connection_is_open() {
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let mut client = connect(address);
    assert_eq!(round_trip(&mut client, b"hello"), b"hello");
    assert!(eventually(|| {
        let stats = plane.stats();
        let backend = cluster_stats(&stats, "backend");
        backend.bytes_upstream == 5
            && backend.bytes_downstream == 5
            && backend.connections_active == 1
    }));
    assert_eq!(plane.stats().listeners[0].connections_active, 1);
}
