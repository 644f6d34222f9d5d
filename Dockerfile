# burst-scaler controller image, for users with a container engine.
# (The project's own local cluster has none: tests/cluster/build-controller-image packages the
# same static binary with umoci instead.)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
      --target x86_64-unknown-linux-gnu --bin burst-scaler

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/burst-scaler /burst-scaler
USER 65532:65532
ENTRYPOINT ["/burst-scaler"]
CMD ["controller"]
