-- CreateTable
CREATE TABLE "certificate" (
    "fingerprint" TEXT NOT NULL,
    "serial_number" TEXT NOT NULL,
    "participant_id" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "not_before" TIMESTAMP(3) NOT NULL,
    "not_after" TIMESTAMP(3) NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'active',
    "source" TEXT NOT NULL,
    "cert_pem" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMP(3),
    "revoked_by" TEXT,
    "revoked_reason" TEXT,

    CONSTRAINT "certificate_pkey" PRIMARY KEY ("fingerprint")
);

-- CreateTable
CREATE TABLE "certificate_request" (
    "id" TEXT NOT NULL,
    "participant_id" TEXT NOT NULL,
    "csr_pem" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "submitted_by" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "decided_at" TIMESTAMP(3),
    "decided_by" TEXT,
    "fingerprint" TEXT,

    CONSTRAINT "certificate_request_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "grant" (
    "id" TEXT NOT NULL,
    "participant_id" TEXT NOT NULL,
    "stream_name" TEXT NOT NULL,
    "kinds" TEXT[],
    "layers" TEXT[],
    "from_sequence" INTEGER NOT NULL DEFAULT 1,
    "to_sequence" INTEGER,
    "expires_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "revoked_at" TIMESTAMP(3),
    "policy" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "grant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "access_chain_checkpoint" (
    "sequence" BIGINT NOT NULL,
    "hash" TEXT NOT NULL,
    "signed_at" TIMESTAMP(3) NOT NULL,
    "key_id" TEXT NOT NULL,
    "jws" TEXT NOT NULL,

    CONSTRAINT "access_chain_checkpoint_pkey" PRIMARY KEY ("sequence")
);

-- CreateIndex
CREATE INDEX "access_log_entry_resource_sequence_idx" ON "access_log_entry"("resource", "sequence");

-- CreateIndex
CREATE INDEX "certificate_participant_id_idx" ON "certificate"("participant_id");

-- CreateIndex
CREATE INDEX "certificate_serial_number_idx" ON "certificate"("serial_number");

-- CreateIndex
CREATE INDEX "certificate_request_participant_id_idx" ON "certificate_request"("participant_id");

-- CreateIndex
CREATE INDEX "grant_participant_id_stream_name_idx" ON "grant"("participant_id", "stream_name");

-- AddForeignKey
ALTER TABLE "certificate" ADD CONSTRAINT "certificate_participant_id_fkey" FOREIGN KEY ("participant_id") REFERENCES "participant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "certificate_request" ADD CONSTRAINT "certificate_request_participant_id_fkey" FOREIGN KEY ("participant_id") REFERENCES "participant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "grant" ADD CONSTRAINT "grant_participant_id_fkey" FOREIGN KEY ("participant_id") REFERENCES "participant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
