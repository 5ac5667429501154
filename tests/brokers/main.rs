//! The forwarding engines (`logwisp::forward`) against real brokers started by each test:
//! `nats-server` (Debian package `nats-server`, JetStream with `-js`) and `mosquitto`
//! (package `mosquitto`, which also brings `mosquitto_passwd`). The engines are driven
//! over plain blocking sockets with short timeouts, the way the reactor would drive them,
//! and every wait has a deadline.
#![cfg(feature = "forward")]

mod link;
mod mqtt;
mod nats;
#[path = "../support/mod.rs"]
mod support;
