# webrtc-phone: a drop-in for the "Sippy WebRTC Phone" container.
# Every build step calls the scripts the README uses, so the image is built the tested way.

# --- Rust build (srtp2-sys needs clang/libclang; openssl-sys needs libssl-dev, pkg-config) ---
FROM rust:1.95-bookworm AS rust
WORKDIR /src
COPY . .
RUN SKIP_WEBROOT=1 scripts/build.sh

# --- Node build of the web root ---
FROM node:20-bookworm AS web
WORKDIR /src
COPY webroot webroot
COPY scripts scripts
RUN scripts/build-webroot.sh

# --- Runtime ---
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/webrtc-phone --shell /usr/sbin/nologin webrtc-phone \
 && install -d -o webrtc-phone -g webrtc-phone -m 0700 /var/lib/webrtc-phone
COPY --from=rust /src/target/release/webrtc-phone /usr/local/bin/webrtc-phone
# The right to bind 443 as an unprivileged user is a file capability, which several builders drop
# on COPY --from (moby/moby#38132, GoogleContainerTools/kaniko#2866): set it here, in the final
# stage, and fail the build when the binary does not carry it.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /usr/local/bin/webrtc-phone \
 && getcap /usr/local/bin/webrtc-phone | grep -q 'cap_net_bind_service=ep' \
 && apt-get purge -y -qq libcap2-bin && apt-get autoremove -y -qq \
 && rm -rf /var/lib/apt/lists/*
COPY --from=web /src/webroot/dist /usr/share/webrtc-phone/webroot
ENV HTTPS_PORT=443 \
    WSS_PORT=9876 \
    SIP_PORT=5060 \
    MIN_RTP_PORT=32000 \
    MAX_RTP_PORT=34000 \
    RTPP_LOG_LEVEL=info \
    RTPP_NODEBUG=0 \
    STATE_DIR=/var/lib/webrtc-phone \
    WEBROOT=/usr/share/webrtc-phone/webroot
EXPOSE 443/tcp 9876/tcp 5060/udp 32000-34000/udp
USER webrtc-phone
ENTRYPOINT ["/usr/local/bin/webrtc-phone"]
