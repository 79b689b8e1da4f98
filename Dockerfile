# A small static image: the operator built for musl, on an empty base, running as a non-root user.
#   docker build -t registry.example.com/imagestream-operator:v0.1.0 .
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# A workspace member and dev-dependency: cargo reads its manifest, nothing of it is built.
COPY testenv ./testenv
RUN cargo build --release --locked --bin imagestream-operator \
 && strip target/release/imagestream-operator

FROM scratch
# System roots for registries with public certificates; add private CAs with --registry-ca-bundle.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/imagestream-operator /imagestream-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/imagestream-operator"]
CMD ["run"]
