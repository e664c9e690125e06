# pgtenant in a container. PostgreSQL itself is not included: point
# pgtenant at your server with --database-url / DATABASE_URL.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pgtenant ./cmd/pgtenant

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pgtenant /usr/local/bin/pgtenant
USER nonroot
ENTRYPOINT ["/usr/local/bin/pgtenant"]
CMD ["serve", "--config", "/etc/pgtenant/pgtenant.yaml"]
