-- CreateTable
CREATE TABLE "privacy_ledger_entry" (
    "id" TEXT NOT NULL,
    "participant_id" TEXT NOT NULL,
    "grant_id" TEXT,
    "release_id" TEXT NOT NULL,
    "stream_name" TEXT NOT NULL,
    "mechanism" TEXT NOT NULL,
    "parameters" JSONB NOT NULL,
    "rows" INTEGER NOT NULL,
    "epsilon" DOUBLE PRECISION,
    "delta" DOUBLE PRECISION,
    "orders" DOUBLE PRECISION[],
    "rdp" DOUBLE PRECISION[],
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "privacy_ledger_entry_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "privacy_ledger_entry_participant_id_at_idx" ON "privacy_ledger_entry"("participant_id", "at");

-- CreateIndex
CREATE INDEX "privacy_ledger_entry_grant_id_at_idx" ON "privacy_ledger_entry"("grant_id", "at");

-- AddForeignKey
ALTER TABLE "privacy_ledger_entry" ADD CONSTRAINT "privacy_ledger_entry_participant_id_fkey" FOREIGN KEY ("participant_id") REFERENCES "participant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "privacy_ledger_entry" ADD CONSTRAINT "privacy_ledger_entry_grant_id_fkey" FOREIGN KEY ("grant_id") REFERENCES "grant"("id") ON DELETE SET NULL ON UPDATE CASCADE;
