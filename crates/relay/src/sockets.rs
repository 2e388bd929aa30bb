//! The relay's listening sockets, with the settings a busy relay needs that the standard
//! library's `bind` does not give: a deep TCP accept backlog and large UDP buffers.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before the relay accepts them. `std`'s 128 overflows when a
/// watch party's members all arrive at once (each overflow costs the client a 1 s SYN
/// retransmit); the kernel caps it at `net.core.somaxconn`.
const TCP_BACKLOG: i32 = 4096;

/// UDP receive and send buffer asked for (the kernel caps it at `net.core.rmem_max` /
/// `wmem_max`). The default ~208 KiB drops handshakes and ACKs when thousands of QUIC
/// connections talk at once.
const UDP_BUFFER: usize = 4 << 20;

/// Send buffer of an accepted connection. Left to autotune, the kernel grows it to ~4 MB for
/// a client that stops reading, which then holds that much before the relay's own bounded
/// queue even starts to fill; 256 KiB is seconds of any room's traffic.
const TCP_SEND_BUFFER: usize = 256 * 1024;

/// Caps an accepted connection's kernel send buffer (best effort).
pub fn bound_send_buffer(stream: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(TCP_SEND_BUFFER) {
        tracing::debug!(error = %e, "cannot cap the TCP send buffer");
    }
}

/// A non-blocking TCP listener on `addr` with a deep backlog.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A non-blocking UDP socket on `addr` with large buffers (best effort: a kernel that grants
/// less still gets a working socket).
pub fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP send buffer");
    }
    if addr.is_ipv6() {
        // Like std's bind: an IPv6 socket that also takes IPv4 is the platform's call.
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_bind_and_report_their_port() {
        let tcp = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(tcp.local_addr().unwrap().port(), 0);
        let udp = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(udp.local_addr().unwrap().port(), 0);
        // The buffer was raised above the ~208 KiB default where the kernel allows it.
        let size = socket2::SockRef::from(&udp).recv_buffer_size().unwrap();
        assert!(size >= 200 * 1024, "{size}");
    }
}
