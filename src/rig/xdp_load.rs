//! Load generators on the stack's own datapath (AF_XDP): a SYN flood and the connect scenario
//! with the stack itself as the client, so the generator is not the bottleneck a raw socket or
//! the kernel's TCP would be.

use crate::engine::xdp::iface_mac;
use crate::engine::{random_secrets, Core, MonoClock};
use crate::io::xdp::{AddressMode, AttachMode, SteerConfig, Steering, XdpLink, XskConfig};
use crate::net::{Net, NetConfig};
use crate::tcp::{self, Shard};
use crate::time::{Clock, Duration};
use crate::wire::EthernetAddress;
use anyhow::{anyhow, bail, Context, Result};
use core::net::{IpAddr, SocketAddr};

/// A SYN flood sent through an AF_XDP socket (the stack's own datapath as the generator, so the
/// generator is not the bottleneck a raw socket is): spoofed sources from 198.18.0.0/15 outside
/// the bed's /24, random ports and sequence numbers, Linux-like SYN options.
pub fn xdp_syn_flood(
    iface: &str,
    dst_mac: EthernetAddress,
    target: std::net::SocketAddrV4,
    count: u64,
    seconds: u64,
    seed: u64,
) -> Result<super::kernel::FloodReport> {
    use crate::io::FrameIo;
    use crate::net::FrameSink;
    use crate::tcp::emit::{emit, OutSegment};
    use crate::tcp::FourTuple;
    use crate::wire::{checksum, EtherType, EthernetRepr, SeqNum, TcpFlags, TcpOptions};
    let src_mac = iface_mac(iface)?;
    let xsk = XskConfig { rx_frames: 64, ..XskConfig::default() };
    let mut link = XdpLink::bind(iface, 0, &xsk).with_context(|| format!("bind AF_XDP socket to {iface}"))?;
    // One template frame; each SYN patches source, port, sequence number and both checksums.
    let t0 = FourTuple::new(SocketAddr::new(IpAddr::from([198, 19, 0, 1]), 1024), SocketAddr::V4(target));
    let opts = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..TcpOptions::default() };
    let mut ip_pkts: Vec<Vec<u8>> = Vec::new();
    emit(
        &mut ip_pkts,
        &t0,
        &OutSegment { options: opts, ..OutSegment::control(SeqNum(1), SeqNum(0), TcpFlags::SYN, 64240) },
        64,
    );
    let ip = ip_pkts.pop().ok_or_else(|| anyhow!("build the SYN template"))?;
    let eth = EthernetRepr { src: src_mac, dst: dst_mac, vlan: None, ethertype: EtherType::Ipv4 };
    let mut template = vec![0u8; 14 + ip.len()];
    eth.emit(&mut template);
    template[14..].copy_from_slice(&ip);
    let dst_ip = target.ip().octets();
    let mut rng = seed | 1;
    let clock = MonoClock::new();
    let start = clock.now();
    let limit = Duration::from_secs(seconds);
    let mut rep = super::kernel::FloodReport::default();
    while rep.sent < count && clock.now().saturating_since(start) < limit {
        for _ in 0..64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let r = rng;
            let host = 256 + (r as u32 % (131_072 - 256));
            let src = (0xc612_0000u32 + host).to_be_bytes();
            let sport = (1024 + ((r >> 20) as u16 % 64_000)).to_be_bytes();
            let seq = ((r >> 32) as u32).to_be_bytes();
            let ok = link.send_frame(template.len(), &mut |f: &mut [u8]| {
                f.copy_from_slice(&template);
                let (ip_h, tcp) = f[14..].split_at_mut(20);
                ip_h[12..16].copy_from_slice(&src);
                ip_h[10..12].fill(0);
                let c = checksum::checksum(ip_h);
                ip_h[10..12].copy_from_slice(&c.to_be_bytes());
                tcp[0..2].copy_from_slice(&sport);
                tcp[4..8].copy_from_slice(&seq);
                tcp[16..18].fill(0);
                let pseudo = checksum::pseudo_header_v4(src.into(), dst_ip.into(), 6, tcp.len() as u16);
                let c = checksum::finish(checksum::sum(tcp) + pseudo);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
            });
            if ok {
                rep.sent += 1;
            } else {
                rep.send_errors += 1;
                break;
            }
        }
        link.flush();
        // Nothing comes back on this socket (no program steers to it), but reclaiming keeps
        // the completion ring moving.
        link.rx_burst(64, &mut |_, _| {});
    }
    link.flush();
    rep.elapsed = std::time::Duration::from_nanos(clock.now().saturating_since(start).as_nanos());
    Ok(rep)
}

/// The connect scenario with the stack itself as the client, on an AF_XDP socket of `iface`
/// (so the generator is not the kernel's TCP): `concurrency` connections in flight for
/// `seconds`, each sending `request` and waiting for the server to close.
#[derive(Debug, Clone)]
pub struct XdpClientConfig {
    pub iface: String,
    /// The client's address (shared with the kernel on `iface`; the XDP program steers the
    /// client port range to the stack).
    pub local: IpAddr,
    pub ports: std::ops::RangeInclusive<u16>,
    pub remote: SocketAddr,
    pub remote_mac: EthernetAddress,
    pub concurrency: usize,
    pub seconds: u64,
    pub request: Vec<u8>,
    /// How long to wait for stragglers after `seconds`.
    pub drain_seconds: u64,
}

/// Runs it on the calling thread. Returns the client's statistics and the measured window.
pub fn xdp_connect_bench(cfg: &XdpClientConfig) -> Result<(crate::app::client::ClientStats, std::time::Duration)> {
    use crate::app::client::{Client, ClientPlan};
    let mac = iface_mac(&cfg.iface)?;
    let steer = SteerConfig {
        listen: Vec::new(),
        client_ports: Some(cfg.ports.clone()),
        owned: vec![cfg.local],
        address_mode: AddressMode::Shared,
    };
    let mut steering = Steering::load(&steer).context("load the XDP steering program")?;
    steering.attach(&cfg.iface, AttachMode::Native).with_context(|| format!("attach XDP to {}", cfg.iface))?;
    let mut link = XdpLink::bind(&cfg.iface, 0, &XskConfig::default())
        .with_context(|| format!("bind AF_XDP socket to {}", cfg.iface))?;
    link.register(&steering).context("insert the AF_XDP socket into xsks_map")?;
    let tcp_cfg = tcp::Config { max_connections: cfg.concurrency * 4 + 1024, ..tcp::Config::default() };
    let shard = Shard::new(tcp_cfg, random_secrets().context("read random keys")?);
    let mut net = Net::new(NetConfig {
        mac,
        addrs: vec![cfg.local],
        own_address: false,
        vlan: None,
        neighbour_ttl: Duration::from_secs(3600),
    });
    let clock = MonoClock::new();
    let start = clock.now();
    net.neigh.learn(cfg.remote.ip(), cfg.remote_mac, start);
    let until = start + Duration::from_secs(cfg.seconds);
    // RSS-aware active opens (mTCP's per-core port pools): on a NIC whose RSS key and table can
    // be read, only the source ports whose replies the NIC puts on queue 0, the one this client
    // serves. Without a key (veth) every port of the range; replies then land where the device
    // puts them.
    let ports: Vec<u16> = match crate::engine::nic::rss_config(&cfg.iface) {
        Ok(rss) => crate::engine::nic::port_pool(&rss, cfg.local, cfg.remote, cfg.ports.clone(), 0),
        Err(e) => {
            let queues = crate::engine::nic::queue_count(&cfg.iface).map(|q| q.rx_queues()).unwrap_or(1);
            if queues > 1 {
                bail!(
                    "{}: {queues} receive queues and no RSS key to read ({e}): replies would land on \
                     queues this client does not serve; give the interface one queue (ethtool -L)",
                    cfg.iface
                );
            }
            eprintln!("xdptcp: {}: no RSS key to read ({e}); one queue, every port of the range", cfg.iface);
            cfg.ports.clone().collect()
        }
    };
    if ports.is_empty() {
        bail!("no port of {:?} has its replies on queue 0 of {}", cfg.ports, cfg.iface);
    }
    let plan = ClientPlan {
        local: cfg.local,
        ports,
        remote: cfg.remote,
        concurrency: cfg.concurrency,
        request: cfg.request.clone(),
        until,
    };
    let mut core: Core<Client> = Core::new(0, shard, net, Box::new(Client::new(plan)));
    let hard_stop = until + Duration::from_secs(cfg.drain_seconds);
    loop {
        let now = clock.now();
        core.poll(now, &mut link);
        // The dispatch of the next poll asks for new connections; keep the loop hot until the
        // window is over and the stragglers are done.
        if now >= until && (core.app.in_flight() == 0 || now >= hard_stop) {
            break;
        }
    }
    let elapsed = std::time::Duration::from_nanos(Duration::from_secs(cfg.seconds).as_nanos());
    let mut stats = core.app.stats.clone();
    stats.timeout += core.app.in_flight() as u64;
    Ok((stats, elapsed))
}
