-- CreateTable
CREATE TABLE "chunk_blob" (
    "sha256" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "data" BYTEA NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "chunk_blob_pkey" PRIMARY KEY ("sha256")
);

-- CreateTable
CREATE TABLE "version_chunk" (
    "version_id" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "sha256" TEXT NOT NULL,
    "size" INTEGER NOT NULL,

    CONSTRAINT "version_chunk_pkey" PRIMARY KEY ("version_id","index")
);

-- CreateTable
CREATE TABLE "stream_event" (
    "stream_name" TEXT NOT NULL,
    "sequence" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "version_id" TEXT NOT NULL,
    "current_version_id" TEXT,
    "actor" TEXT NOT NULL,
    "reason" TEXT,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "stream_event_pkey" PRIMARY KEY ("stream_name","sequence")
);

-- CreateIndex
CREATE INDEX "version_chunk_sha256_idx" ON "version_chunk"("sha256");

-- CreateIndex
CREATE INDEX "stream_event_version_id_idx" ON "stream_event"("version_id");

-- Move existing chunks into content-addressed storage: one blob per distinct hash.
INSERT INTO "chunk_blob" ("sha256", "size", "data")
SELECT DISTINCT ON ("sha256") "sha256", "size", "data" FROM "chunk" ORDER BY "sha256";

INSERT INTO "version_chunk" ("version_id", "index", "sha256", "size")
SELECT "version_id", "index", "sha256", "size" FROM "chunk";

-- Every version already published becomes a `published` event, numbered as the version.
INSERT INTO "stream_event" ("stream_name", "sequence", "kind", "version_id", "current_version_id", "actor", "at")
SELECT "stream_name", "sequence", 'published', "id", "id", 'hub', "published_at" FROM "knowledge_version";

-- DropForeignKey
ALTER TABLE "chunk" DROP CONSTRAINT "chunk_version_id_fkey";

-- DropTable
DROP TABLE "chunk";

-- AddForeignKey
ALTER TABLE "version_chunk" ADD CONSTRAINT "version_chunk_version_id_fkey" FOREIGN KEY ("version_id") REFERENCES "knowledge_version"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "version_chunk" ADD CONSTRAINT "version_chunk_sha256_fkey" FOREIGN KEY ("sha256") REFERENCES "chunk_blob"("sha256") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "stream_event" ADD CONSTRAINT "stream_event_stream_name_fkey" FOREIGN KEY ("stream_name") REFERENCES "knowledge_stream"("name") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "stream_event" ADD CONSTRAINT "stream_event_version_id_fkey" FOREIGN KEY ("version_id") REFERENCES "knowledge_version"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
