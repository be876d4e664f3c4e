-- CreateTable
CREATE TABLE "student" (
    "id" TEXT NOT NULL,
    "knowledge_version_id" TEXT,
    "owner" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "parent_student_id" TEXT,
    "architecture" JSONB NOT NULL,
    "params" INTEGER NOT NULL,
    "metrics" JSONB NOT NULL DEFAULT '{}',
    "engine" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "path" TEXT,
    "model_json" TEXT,
    "weights" BYTEA,

    CONSTRAINT "student_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "student_knowledge_version_id_idx" ON "student"("knowledge_version_id");

-- CreateIndex
CREATE INDEX "student_owner_created_at_idx" ON "student"("owner", "created_at");

-- AddForeignKey
ALTER TABLE "student" ADD CONSTRAINT "student_parent_student_id_fkey" FOREIGN KEY ("parent_student_id") REFERENCES "student"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
