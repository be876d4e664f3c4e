-- CreateTable
CREATE TABLE "participant" (
    "id" TEXT NOT NULL,
    "display_name" TEXT,
    "status" TEXT NOT NULL DEFAULT 'active',
    "enrolled_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "participant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "knowledge_stream" (
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "knowledge_stream_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "knowledge_version" (
    "id" TEXT NOT NULL,
    "stream_name" TEXT NOT NULL,
    "sequence" INTEGER NOT NULL,
    "parent_id" TEXT,
    "manifest_json" TEXT NOT NULL,
    "root_hash" TEXT NOT NULL,
    "chunk_count" INTEGER NOT NULL,
    "total_bytes" BIGINT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'published',
    "published_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "knowledge_version_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "chunk" (
    "version_id" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "sha256" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "data" BYTEA NOT NULL,

    CONSTRAINT "chunk_pkey" PRIMARY KEY ("version_id","index")
);

-- CreateTable
CREATE TABLE "access_log_entry" (
    "sequence" BIGINT NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "resource" TEXT NOT NULL,
    "outcome" TEXT NOT NULL,
    "reason" TEXT,
    "detail" JSONB,
    "peer_address" TEXT,
    "prev_hash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "access_log_entry_pkey" PRIMARY KEY ("sequence")
);

-- CreateTable
CREATE TABLE "access_chain_head" (
    "id" INTEGER NOT NULL,
    "sequence" BIGINT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "access_chain_head_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "knowledge_version_stream_name_sequence_key" ON "knowledge_version"("stream_name", "sequence");

-- CreateIndex
CREATE UNIQUE INDEX "access_log_entry_hash_key" ON "access_log_entry"("hash");

-- CreateIndex
CREATE INDEX "access_log_entry_actor_sequence_idx" ON "access_log_entry"("actor", "sequence");

-- CreateIndex
CREATE INDEX "access_log_entry_action_sequence_idx" ON "access_log_entry"("action", "sequence");

-- CreateIndex
CREATE INDEX "access_log_entry_outcome_sequence_idx" ON "access_log_entry"("outcome", "sequence");

-- CreateIndex
CREATE INDEX "access_log_entry_at_idx" ON "access_log_entry"("at");

-- AddForeignKey
ALTER TABLE "knowledge_version" ADD CONSTRAINT "knowledge_version_stream_name_fkey" FOREIGN KEY ("stream_name") REFERENCES "knowledge_stream"("name") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "knowledge_version" ADD CONSTRAINT "knowledge_version_parent_id_fkey" FOREIGN KEY ("parent_id") REFERENCES "knowledge_version"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "chunk" ADD CONSTRAINT "chunk_version_id_fkey" FOREIGN KEY ("version_id") REFERENCES "knowledge_version"("id") ON DELETE CASCADE ON UPDATE CASCADE;
